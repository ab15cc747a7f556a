"""Quality-control pictures: PNG montages of model-space volumes (drawn by :mod:`.panels`).

Model arrays are (Z, H, W) with Z inferior->superior, H posterior->anterior, W the patient's
left->right.  Planes are shown with superior (axial: anterior) at the top and the patient's left
on the left of the picture (neurological convention).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from ..io.images import sitk_from_picture

if TYPE_CHECKING:
    from ..preprocessing.pose import Pose


def to_uint8(image: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255 (clipped); uint8 input is returned unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    scaled = (image.astype(np.float64) - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def montage(rows: Sequence[Sequence[np.ndarray]], gap: int = 2, background: int = 0) -> np.ndarray:
    """Tile 2D images (grey or RGB; float in [0, 1] or uint8) row by row into one uint8 image.

    Images in a row are top-aligned; rows are left-aligned; ``gap`` pixels of ``background``
    separate them.  The result is RGB when any image is RGB.
    """
    cells = [[to_uint8(img) for img in row] for row in rows if len(row)]
    if not cells:
        raise ValueError("montage needs at least one image")
    rgb = any(img.ndim == 3 for row in cells for img in row)
    for row in cells:
        for img in row:
            if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
                raise ValueError(f"montage images are 2D grey or RGB, got shape {img.shape}")
    if rgb:
        cells = [[img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2) for img in row] for row in cells]
    heights = [max(img.shape[0] for img in row) for row in cells]
    widths = [sum(img.shape[1] for img in row) + gap * (len(row) - 1) for row in cells]
    shape: tuple[int, ...] = (sum(heights) + gap * (len(cells) - 1), max(widths))
    if rgb:
        shape = (*shape, 3)
    out = np.full(shape, background, dtype=np.uint8)
    y = 0
    for row, height in zip(cells, heights):
        x = 0
        for img in row:
            out[y : y + img.shape[0], x : x + img.shape[1]] = img
            x += img.shape[1] + gap
        y += height + gap
    return out


def mask_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Centre of the mask's bounding box (the volume's centre when the mask is empty)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return tuple(int(n // 2) for n in mask.shape)  # type: ignore[return-value]
    idx = np.argwhere(mask)
    return tuple(int(v) for v in (idx.min(axis=0) + idx.max(axis=0)) // 2)  # type: ignore[return-value]


def planes(volume_zhw: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal and sagittal sections of a (Z, H, W) volume through ``centre``, display-oriented."""
    vol = np.asarray(volume_zhw)
    z, h, w = (int(np.clip(c, 0, n - 1)) for c, n in zip(centre, vol.shape[:3]))
    axial = vol[z][::-1]  # anterior at the top
    coronal = vol[:, h, :][::-1]  # superior at the top
    sagittal = vol[:, :, w][::-1]  # superior at the top, anterior on the right
    return [axial, coronal, sagittal]


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternate square tiles of two same-shape 2D images (alignment check)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"checkerboard images differ in shape: {a.shape} vs {b.shape}")
    size = max(1, int(np.ceil(max(a.shape[:2]) / tiles)))
    rows, cols = np.indices(a.shape[:2])
    pick = ((rows // size + cols // size) % 2).astype(bool)
    if a.ndim == 3:
        pick = pick[:, :, None]
    return np.where(pick, b, a)


PLANE_NAMES = ("AXIAL", "CORONAL", "SAGITTAL")
TRUST_COLOURMAP = "viridis"


def _value_range(values: np.ndarray) -> tuple[float, float]:
    """The finite values' range (a unit range when there is none), for a colour bar."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def pair_montage(
    first01: np.ndarray,
    second01: np.ndarray,
    mask: np.ndarray | None = None,
    tiles: int = 8,
    titles: Sequence[str] | None = None,
    min_side: int | None = None,
    caption: str | None = None,
    trust: np.ndarray | None = None,
) -> np.ndarray:
    """Rows = axial, coronal, sagittal through the mask's centre; columns = first, second,
    checkerboard of the two, and the trust map when given.  Inputs are (Z, H, W), the images in
    [0, 1]; the mask is outlined on the first column.  Used for CT vs MRI (preprocess) and CT vs
    synthetic MRI (translate).  Returns a uint8 RGB picture drawn by matplotlib.

    ``min_side`` enlarges every panel by the smallest integer factor that gives the panels at
    least that shorter side; ``titles`` (three column names; a trust column is called TRUST
    unless a fourth is given) then label the top row, and the plane names the first column.
    ``caption`` (the head pose, say) is written at the foot of the second column's axial panel.
    ``trust`` (on the images' grid) is drawn with a colour map over its range inside the mask
    (black outside) and a colour bar on the right."""
    from .panels import ColourColumn, draw_grid

    first01, second01 = np.asarray(first01), np.asarray(second01)
    if first01.shape != second01.shape:
        raise ValueError(f"volumes differ in shape: {first01.shape} vs {second01.shape}")
    if trust is not None and np.shape(trust) != first01.shape:
        raise ValueError(f"the trust map's shape {np.shape(trust)} differs from the images' {first01.shape}")
    columns = 3 if trust is None else 4
    if titles is not None:
        titles = [*titles, "TRUST"] if trust is not None and len(titles) == 3 else list(titles)
        if len(titles) != columns:
            raise ValueError(f"{columns} column titles are needed, got {len(titles)}")
    inside = np.ones(first01.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    centre = mask_centre(inside)
    rows = []
    for a, b in zip(planes(first01, centre), planes(second01, centre)):
        a8, b8 = to_uint8(a), to_uint8(b)
        rows.append([a8, b8, checkerboard(a8, b8, tiles)])
    colour_column = None
    if trust is not None:
        shown = np.where(inside, np.asarray(trust, dtype=np.float64), np.nan)
        for row, plane in zip(rows, planes(shown, centre)):
            row.append(plane)
        colour_column = ColourColumn(3, TRUST_COLOURMAP, *_value_range(shown))
    return draw_grid(
        rows,
        outlines=planes(inside, centre) if mask is not None else (),
        column_titles=titles or (),
        row_names=PLANE_NAMES if titles is not None else (),
        caption=caption,
        colour_column=colour_column,
        min_side=min_side,
    )


def pose_caption(pose: Pose | None) -> str:
    """The head pose in the QC picture's lettering: the frame the slices were cut in."""
    if pose is None:
        return "NATIVE AXES"
    pitch, roll, yaw = (round(v, 1) + 0.0 for v in pose.angles_degrees.values())  # + 0.0: no "-0.0"
    return f"POSE P {pitch:.1f} R {roll:.1f} Y {yaw:.1f}"


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 grey (H, W) or RGB (H, W, 3) image as PNG, atomically."""
    import SimpleITK as sitk

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"write_png needs uint8 (H, W) or (H, W, 3), got {image.dtype} {image.shape}")
    if not str(path).lower().endswith(".png"):
        raise Ct2mriError(f"{path}: a QC picture must end in .png")
    itk_image = sitk_from_picture(image)
    with atomic_output(path) as tmp:
        sitk.WriteImage(itk_image, str(tmp))
