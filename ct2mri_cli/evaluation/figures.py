"""Matplotlib figures without pyplot: each figure has its own Agg canvas (no display, no global
state, safe in worker threads) and is saved as a PNG whose bytes depend only on its content."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from ..errors import Ct2mriError
from ..io.atomic import atomic_output

# PNG text chunks matplotlib would add; "Software" names its version, so it is left out.
PNG_METADATA: dict[str, str | None] = {"Software": None}


def new_figure(width_px: int, height_px: int, dpi: float = 100.0, facecolor: str = "white") -> Figure:
    """A figure of exactly ``width_px`` x ``height_px`` pixels on its own Agg canvas."""
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor=facecolor)
    FigureCanvasAgg(figure)
    return figure


def text_width_px(figure: Figure, text: str, size_pt: float, weight: str = "normal") -> float:
    """How many pixels ``text`` takes on ``figure`` at ``size_pt`` points (to fit labels to panels)."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    width, _, _ = renderer.get_text_width_height_descent(
        text, FontProperties(size=size_pt, weight=weight), ismath=False
    )
    return float(width)


def figure_rgb(figure: Figure) -> np.ndarray:
    """The rendered figure as a uint8 (H, W, 3) array."""
    canvas = figure.canvas
    canvas.draw()
    return np.array(canvas.buffer_rgba())[:, :, :3]  # type: ignore[attr-defined]


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Write ``figure`` as a PNG at its own size, atomically (a temporary file renamed)."""
    if not str(path).lower().endswith(".png"):
        raise Ct2mriError(f"{path}: a picture must end in .png")
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=figure.dpi, facecolor=figure.get_facecolor(), metadata=PNG_METADATA)
