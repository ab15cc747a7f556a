"""Axial slices of a case's volumes as one grayscale sprite image per volume, for the report's viewer.

Volumes are put in RAS voxel order (an exact permutation, :func:`canonical_order`), cropped to
the brain with a margin, box-averaged in-plane to at most ``size`` pixels on the longer side and
tiled slice by slice into one lossy image (WebP by default).  One image per volume keeps the
page's element count and per-image overhead small; tiles sit on 8-pixel cells so compression
blocks never mix two slices.  Slices are shown as in the QC montage: anterior at the top, the
patient's left on the left.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

from ..io.images import canonical_order
from ..io.volumes import Volume

BRAIN_MARGIN_MM = 15.0
IMAGE_FORMAT = "WEBP"
QUALITY = 60
CELL = 8
MIME = {"WEBP": "image/webp", "JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass
class SliceStack:
    """A volume's axial slices tiled into one image (``data``, of type ``mime``): slice k lies in
    column ``k % columns``, row ``k // columns`` of cells of ``cell`` (height, width) pixels, as
    the top-left ``height`` x ``width`` of its cell."""

    data: bytes
    mime: str
    count: int
    columns: int
    width: int
    height: int
    cell: tuple[int, int]
    aspect: float  # physical height / width of a slice

    def meta(self) -> dict[str, object]:
        return {
            "count": self.count,
            "columns": self.columns,
            "width": self.width,
            "height": self.height,
            "cell_w": self.cell[1],
            "cell_h": self.cell[0],
            "aspect": round(self.aspect, 4),
        }


def ras_array(volume: Volume) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The voxels in RAS order and their spacing in mm along those axes."""
    ras, _ = canonical_order(volume)
    return np.asarray(ras.data), ras.spacing


def brain_box(
    brain: np.ndarray, spacing: tuple[float, float, float], margin_mm: float = BRAIN_MARGIN_MM
) -> tuple[slice, slice, slice]:
    """The bounding box of ``brain`` (all voxels when it is empty), grown by ``margin_mm``."""
    if not brain.any():
        return tuple(slice(0, n) for n in brain.shape)  # type: ignore[return-value]
    box = []
    for axis, step in enumerate(spacing):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(brain.any(axis=other))
        grow = int(math.ceil(margin_mm / step))
        box.append(slice(max(0, int(hit[0]) - grow), min(brain.shape[axis], int(hit[-1]) + 1 + grow)))
    return tuple(box)  # type: ignore[return-value]


def _box_mean(array: np.ndarray, axis: int, bins: int) -> np.ndarray:
    """Average ``array`` over ``bins`` near-equal runs of its ``axis`` (area resampling)."""
    n = array.shape[axis]
    if bins >= n:
        return array
    starts = np.floor(np.linspace(0, n, bins + 1)[:-1]).astype(np.intp)
    sums = np.add.reduceat(array, starts, axis=axis)
    widths = np.diff(np.append(starts, n)).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = bins
    return sums / widths.reshape(shape)


def axial_slices(
    data: np.ndarray, spacing: tuple[float, float, float], box: tuple[slice, slice, slice], size: int
) -> tuple[np.ndarray, float]:
    """(Z, rows, columns) float32 slices of the box, anterior up and patient's left on the left,
    at most ``size`` pixels on the longer side; and a slice's physical height / width."""
    crop = np.asarray(data[box], dtype=np.float32)
    width_mm, height_mm = crop.shape[0] * spacing[0], crop.shape[1] * spacing[1]
    pixel_mm = max(min(spacing[:2]), max(width_mm, height_mm) / size)
    crop = _box_mean(crop, 0, max(1, round(width_mm / pixel_mm)))
    crop = _box_mean(crop, 1, max(1, round(height_mm / pixel_mm)))
    slices = np.transpose(crop, (2, 1, 0))[:, ::-1, :]
    return np.ascontiguousarray(slices), height_mm / width_mm


def sprite(
    slices_u8: np.ndarray, aspect: float, image_format: str = IMAGE_FORMAT, quality: int = QUALITY
) -> SliceStack:
    """Tile (Z, H, W) uint8 slices into one near-square image."""
    from PIL import Image

    count, height, width = slices_u8.shape
    cell_h, cell_w = -(-height // CELL) * CELL, -(-width // CELL) * CELL
    columns = max(1, math.ceil(math.sqrt(count * cell_h / cell_w)))
    rows = math.ceil(count / columns)
    sheet = np.zeros((rows * cell_h, columns * cell_w), dtype=np.uint8)
    for k in range(count):
        y, x = (k // columns) * cell_h, (k % columns) * cell_w
        sheet[y : y + height, x : x + width] = slices_u8[k]
    buffer = io.BytesIO()
    options = {"WEBP": {"quality": quality, "method": 4}, "JPEG": {"quality": quality, "optimize": True}}
    Image.fromarray(sheet).save(buffer, format=image_format, **options.get(image_format, {}))
    return SliceStack(buffer.getvalue(), MIME[image_format], count, columns, width, height, (cell_h, cell_w), aspect)
