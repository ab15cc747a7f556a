"""A labelled grid of image panels drawn by matplotlib: the layout of the QC montages.

Panels keep their voxels square and are enlarged by one integer factor (nearest-neighbour). Each
column is as wide as its widest panel and each panel is centred in its column, so a column's
title stands over every row's panel (a sagittal section is wider than an axial one); rows are
top-aligned, a few pixels apart on a black ground. Labels are text in dark boxes in the panels'
corners, and an optional colour-mapped column gets a colour bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from .figures import figure_rgb, new_figure, text_width_px

LABEL_COLOUR = "#ffe640"
OUTLINE_COLOUR = "#ff4040"
_DPI = 72.0  # one point is one pixel, so font sizes here are pixel sizes
_PAD = 3  # pixels between a label and its panel's edge
_LARGEST_FONT = 20.0

Box = tuple[int, int, int, int]  # x, y (from the top-left corner), width, height in pixels


@dataclass(frozen=True)
class ColourColumn:
    """A column of float panels drawn with a colour map over ``vmin..vmax`` (NaN black)."""

    index: int
    colourmap: str
    vmin: float
    vmax: float


def grid_boxes(shapes: Sequence[Sequence[tuple[int, int]]], factor: int, gap: int) -> tuple[list[list[Box]], int, int]:
    """The box of each panel of (height, width) ``shapes`` enlarged ``factor`` times, centred in
    its column, and the grid's width and height."""
    columns = max(len(row) for row in shapes)
    column_widths = [max(row[c][1] for row in shapes if c < len(row)) * factor for c in range(columns)]
    lefts = np.concatenate([[0], np.cumsum(np.add(column_widths, gap))]).astype(int)
    boxes, y = [], 0
    for row in shapes:
        boxes.append(
            [
                (int(lefts[c]) + (column_widths[c] - w * factor) // 2, y, w * factor, h * factor)
                for c, (h, w) in enumerate(row)
            ]
        )
        y += max(h for h, _ in row) * factor + gap
    return boxes, int(lefts[-1]) - gap, y - gap


def enlargement(shapes: Sequence[Sequence[tuple[int, int]]], gap: int, min_side: int | None) -> int:
    """The smallest integer factor that gives the grid at least ``min_side`` pixels on its shorter
    side (the gaps do not grow with the panels)."""
    factor = 1
    while min_side is not None and min(grid_boxes(shapes, factor, gap)[1:]) < min_side:
        factor += 1
    return factor


def label_size(figure: Figure, text: str, box: Box, largest: float = _LARGEST_FONT) -> float:
    """The largest font size (pixels, up to ``largest``) at which ``text`` fits the panel's width
    and takes at most a seventh of its height."""
    room = max(1.0, box[2] - 4 * _PAD)
    fits = 10.0 * room / max(1.0, text_width_px(figure, text, 10.0, "bold"))
    return max(4.0, min(largest, box[3] / 7, fits))


def _label(axes: Axes, text: str, corner: str, size: float, box: Box) -> None:
    """Write ``text`` in a dark box at the top-left or bottom-left corner of a panel."""
    top = corner == "top"
    y = 1 - _PAD / box[3] if top else _PAD / box[3]
    axes.text(
        _PAD / box[2],
        y,
        text,
        transform=axes.transAxes,
        ha="left",
        va="top" if top else "bottom",
        fontsize=size,
        fontweight="bold",
        color=LABEL_COLOUR,
        bbox={"facecolor": "black", "alpha": 0.7, "edgecolor": "none", "pad": 2.0},
    )


def draw_grid(
    rows: Sequence[Sequence[np.ndarray]],
    outlines: Sequence[np.ndarray | None] = (),
    column_titles: Sequence[str] = (),
    row_names: Sequence[str] = (),
    caption: str | None = None,
    colour_column: ColourColumn | None = None,
    min_side: int | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Render ``rows`` of panels (uint8 grey, or float in the colour column) as a uint8 RGB image.

    ``outlines[r]`` (a boolean panel) is drawn as a contour on row r's first panel;
    ``column_titles`` label the first row's panels at the top, ``row_names`` the first column's
    at the bottom, both at one common size; ``caption`` goes at the foot of the first row's
    second panel, smaller.  ``min_side`` as in :func:`enlargement`.
    """
    shapes = [[panel.shape[:2] for panel in row] for row in rows]
    factor = enlargement(shapes, gap, min_side)
    boxes, width, height = grid_boxes(shapes, factor, gap)
    figure = new_figure(width, height, dpi=_DPI, facecolor="black")
    labels = [(0, c, text, "top") for c, text in enumerate(column_titles)]
    labels += [(r, 0, text, "bottom") for r, text in enumerate(row_names)]
    size = min((label_size(figure, text, boxes[r][c]) for r, c, text, _ in labels), default=_LARGEST_FONT)
    strip = 0
    if colour_column is not None:
        bar_width, tick_size = max(6, 3 * factor), 0.8 * size
        strip = 2 * gap + bar_width + 8 + int(np.ceil(text_width_px(figure, "-0.000", tick_size)))
        figure.set_size_inches((width + strip) / _DPI, height / _DPI)
    total = width + strip

    def axes_at(x: float, y: float, w: float, h: float) -> Axes:
        axes = figure.add_axes((x / total, 1 - (y + h) / height, w / total, h / height))
        axes.set_axis_off()
        return axes

    mapped = None
    for r, row in enumerate(rows):
        for c, panel in enumerate(row):
            axes = axes_at(*boxes[r][c])
            if colour_column is not None and c == colour_column.index:
                colours = matplotlib.colormaps[colour_column.colourmap].with_extremes(bad="black")
                mapped = axes.imshow(
                    panel,
                    cmap=colours,
                    vmin=colour_column.vmin,
                    vmax=colour_column.vmax,
                    interpolation="nearest",
                    aspect="auto",
                )
            else:
                axes.imshow(panel, cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
            outline = outlines[r] if c == 0 and r < len(outlines) else None
            if outline is not None and outline.any() and not outline.all():
                axes.contour(
                    outline.astype(np.float32), levels=[0.5], colors=[OUTLINE_COLOUR], linewidths=max(1.0, factor / 3)
                )
                axes.set_xlim(-0.5, panel.shape[1] - 0.5)
                axes.set_ylim(panel.shape[0] - 0.5, -0.5)
            for text, corner in ((t, k) for lr, lc, t, k in labels if (lr, lc) == (r, c)):
                _label(axes, text, corner, size, boxes[r][c])
            if caption and (r, c) == (0, 1):
                _label(axes, caption, "bottom", label_size(figure, caption, boxes[r][c], 0.7 * size), boxes[r][c])
    if mapped is not None:
        bar_axes = figure.add_axes(
            ((width + 2 * gap) / total, tick_size / height, bar_width / total, (height - 2 * tick_size) / height)
        )
        bar = figure.colorbar(mapped, cax=bar_axes)
        bar.outline.set_edgecolor("white")
        bar_axes.tick_params(colors="white", labelsize=tick_size, length=3)
        bar_axes.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    return figure_rgb(figure)
