"""Line plots rasterised with numpy, for PNGs without a plotting library."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _draw_polyline(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: tuple[int, int, int]) -> None:
    """Draw straight segments between consecutive points, 2 px thick."""
    height, width = canvas.shape[:2]
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 2
        px = np.rint(np.linspace(x0, x1, n)).astype(int)
        py = np.rint(np.linspace(y0, y1, n)).astype(int)
        for dy in (0, 1):
            canvas[np.clip(py + dy, 0, height - 1), np.clip(px, 0, width - 1)] = colour


def curve_panels(
    curves: Sequence[Sequence[np.ndarray]],
    width: int = 512,
    height: int = 140,
    colours: Sequence[tuple[int, int, int]] = ((40, 90, 200), (220, 80, 40), (40, 160, 60), (150, 60, 170)),
) -> np.ndarray:
    """One panel per entry of ``curves`` (each a list of 1D series sharing that panel's y range).

    Returns a white RGB uint8 image with the panels stacked vertically, a frame and a zero line.
    """
    margin = 8
    panels = []
    for series in curves:
        canvas = np.full((height, width, 3), 255, dtype=np.uint8)
        values = np.concatenate([np.asarray(s, dtype=np.float64) for s in series])
        lo, hi = float(min(values.min(), 0.0)), float(values.max())
        span = hi - lo if hi > lo else 1.0
        to_y = lambda v: margin + (height - 2 * margin - 1) * (1.0 - (v - lo) / span)  # noqa: E731
        canvas[[margin - 1, height - margin], margin - 1 : width - margin + 1] = 0
        canvas[margin - 1 : height - margin + 1, [margin - 1, width - margin]] = 0
        zero_row = int(round(to_y(0.0)))
        canvas[zero_row, margin : width - margin : 4] = 160
        for colour, s in zip(colours, series):
            s = np.asarray(s, dtype=np.float64)
            xs = margin + np.arange(len(s)) * (width - 2 * margin - 1) / max(len(s) - 1, 1)
            _draw_polyline(canvas, xs, to_y(s), colour)
        panels.append(canvas)
    return np.concatenate(panels, axis=0)
