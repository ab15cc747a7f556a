"""The style key's three curves against intensity, as a matplotlib figure (``histogram --png``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE, key_curves
from .figures import new_figure, save_png

SIZE_PX = (800, 720)
_PANELS = (
    ("histogram", "share of voxels x 10"),
    ("cumulative", "cumulative share x 10"),
    ("differential", "change x 100"),
)
_MOST_NAMED = 8  # more volumes than this are drawn in grey under one legend entry


def write_key_plot(
    keys: Sequence[tuple[str, torch.Tensor]], path: str | os.PathLike, average: torch.Tensor | None = None
) -> None:
    """Draw each named key's histogram, cumulative and differential curves (one panel each, the
    intensity bins' centres on x) and, when given, their ``average`` in black; write a PNG."""
    edges = np.linspace(LOWER_EDGE, UPPER_EDGE, NUM_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    figure = new_figure(*SIZE_PX)
    axes = figure.subplots(3, 1, sharex=True)
    many = len(keys) > _MOST_NAMED
    for i, (name, key) in enumerate(keys):
        label = (f"each of {len(keys)} volumes" if i == 0 else None) if many else name
        style = {"color": "0.6", "linewidth": 0.8} if many else {"linewidth": 1.4}
        for ax, curve in zip(axes, key_curves(key)):
            ax.plot(centres, curve, label=label, **style)
    if average is not None:
        for ax, curve in zip(axes, key_curves(average)):
            ax.plot(centres, curve, color="black", linewidth=2.0, label=f"average of {len(keys)}")
    for ax, (title, unit) in zip(axes, _PANELS):
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel(unit)
        ax.axhline(0.0, color="0.75", linewidth=0.6, zorder=0)
        ax.grid(True, color="0.92")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("intensity (volume normalised to [0, 1]; background excluded)")
    axes[-1].set_xlim(LOWER_EDGE, UPPER_EDGE)
    figure.suptitle("style key", fontsize=12)
    figure.tight_layout()
    save_png(figure, path)
