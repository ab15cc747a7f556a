"""Quality-control pictures: PNG montages of model-space volumes (numpy + SimpleITK only).

Model arrays are (Z, H, W) with Z inferior->superior, H posterior->anterior, W the patient's
left->right.  Planes are shown with superior (axial: anterior) at the top and the patient's left
on the left of the picture (neurological convention).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from .lettering import draw_label, fitting_scale

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


def _outline(image_u8: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 64, 64)) -> np.ndarray:
    """RGB copy of a grey image with the mask's border drawn in ``colour``."""
    mask = np.asarray(mask, dtype=bool)
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    rgb = np.repeat(image_u8[:, :, None], 3, axis=2)
    rgb[mask & ~inner] = colour
    return rgb


PLANE_NAMES = ("AXIAL", "CORONAL", "SAGITTAL")


def pair_montage(
    first01: np.ndarray,
    second01: np.ndarray,
    mask: np.ndarray | None = None,
    tiles: int = 8,
    titles: Sequence[str] | None = None,
    min_side: int | None = None,
    caption: str | None = None,
) -> np.ndarray:
    """Rows = axial, coronal, sagittal through the mask's centre; columns = first, second,
    checkerboard of the two.  Inputs are (Z, H, W) in [0, 1]; the mask outline is drawn on the
    first column.  Used for CT vs MRI (preprocess) and CT vs synthetic MRI (translate).

    ``min_side`` enlarges every panel by the smallest integer factor that gives the picture at
    least that shorter side; ``titles`` (three column names) then label the top row, and the
    plane names label the first column.  ``caption`` (the head pose, say) is written at the foot
    of the second column's axial panel."""
    first01, second01 = np.asarray(first01), np.asarray(second01)
    if first01.shape != second01.shape:
        raise ValueError(f"volumes differ in shape: {first01.shape} vs {second01.shape}")
    if titles is not None and len(titles) != 3:
        raise ValueError(f"three column titles are needed, got {len(titles)}")
    centre = mask_centre(mask if mask is not None else np.ones(first01.shape, dtype=bool))
    mask_planes = planes(mask, centre) if mask is not None else [None, None, None]
    rows = []
    for a, b, m in zip(planes(first01, centre), planes(second01, centre), mask_planes):
        a8, b8 = to_uint8(a), to_uint8(b)
        left = _outline(a8, m) if m is not None else a8
        rows.append([left, b8, checkerboard(a8, b8, tiles)])
    if min_side is not None:
        factor = max(1, -(-min_side // max(1, min(montage(rows).shape[:2]))))
        while min(montage([[np.zeros((p.shape[0] * factor, p.shape[1] * factor), np.uint8) for p in row]
                           for row in rows]).shape) < min_side:
            factor += 1  # the gaps between panels do not grow with them
        rows = [[np.repeat(np.repeat(panel, factor, axis=0), factor, axis=1) for panel in row] for row in rows]
    if titles is not None:
        labels = [(0, c, title, "top") for c, title in enumerate(titles)] + [(r, 0, PLANE_NAMES[r], "bottom") for r in range(3)]
        scale = min(fitting_scale(text, rows[r][c].shape[1], rows[r][c].shape[0]) for r, c, text, _ in labels)
        for r, c, text, corner in labels:
            rows[r][c] = draw_label(rows[r][c], text, corner, scale)
    if caption:
        rows[0][1] = draw_label(rows[0][1], caption, "bottom")
    return montage(rows)


def pose_caption(pose: "Pose | None") -> str:
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
    itk_image = sitk.GetImageFromArray(np.ascontiguousarray(image), isVector=image.ndim == 3)
    with atomic_output(path) as tmp:
        sitk.WriteImage(itk_image, str(tmp))
