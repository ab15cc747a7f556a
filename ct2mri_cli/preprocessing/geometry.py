"""From a native scan to the model grid and back, with a record that makes the way back exact.

The model grid is canonical RAS, isotropic ``spacing_mm``, cropped to the brain's bounding box
plus ``margin_mm`` along the slice axis and padded/cropped, centred on the brain, to ``in_plane``
= (H, W).  Model arrays are (Z, H, W) = RAS data[x, y, z] transposed to (z, y, x).

Two paths lead there:

- *exact*: the native axes are a permutation (with flips) of RAS and the native spacing already
  equals the model spacing.  Reorientation and cropping only move voxels, so values survive the
  round trip bit for bit.
- *resampled*: anything else (other spacing, oblique or rotated affines).  The native volume is
  resampled (linear for images, nearest for masks, Gaussian anti-aliasing when the target is
  coarser) onto an axis-aligned RAS grid, and the way back resamples the model array onto every
  native voxel with the inverse mapping.

:class:`GridRecord` holds what both directions need and converts to and from a plain dict, so it
can live in JSON manifests and sidecars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from ..io.images import (
    Interpolation,
    anti_aliased,
    canonical_affine,
    canonical_array,
    resample_onto_grid,
    sitk_from_array,
    storage_order,
    voxel_order,
)
from ..io.volumes import Volume
from .config import PreprocessConfig

_AXIS_TOL = 1e-6
_SPACING_TOL = 1e-4


@dataclass
class GridRecord:
    """Everything needed to go from a native grid to the model grid and back.

    ``model_affine`` maps (x, y, z) = (W, H, Z) indices of a model array to RAS+ mm.
    ``orientation`` (nibabel ornt, native -> RAS) and ``crop_start`` (x, y, z start of the model
    window in the canonical or resampled RAS grid) describe the crop; ``resampled`` says which
    path was taken; ``brain_fits`` is False when the in-plane size cuts the brain.
    """

    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    spacing_mm: float
    model_shape: tuple[int, int, int]
    model_affine: np.ndarray
    resampled: bool
    orientation: np.ndarray
    crop_start: tuple[int, int, int]
    brain_fits: bool = True

    def cut_note(self, name: str) -> str | None:
        """A warning for the user when the model's slice size cut the brain, else None."""
        if self.brain_fits:
            return None
        _, h, w = self.model_shape
        return f"{name}: the brain is larger than the model's {h}x{w} slices at {self.spacing_mm:g} mm and was cut at the edges"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return {
            "native_shape": [int(n) for n in self.native_shape],
            "native_affine": np.asarray(self.native_affine, dtype=float).tolist(),
            "spacing_mm": float(self.spacing_mm),
            "model_shape": [int(n) for n in self.model_shape],
            "model_affine": np.asarray(self.model_affine, dtype=float).tolist(),
            "resampled": bool(self.resampled),
            "orientation": np.asarray(self.orientation, dtype=float).tolist(),
            "crop_start": [int(n) for n in self.crop_start],
            "brain_fits": bool(self.brain_fits),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridRecord:
        try:
            record = cls(
                native_shape=tuple(int(n) for n in data["native_shape"]),  # type: ignore[arg-type]
                native_affine=np.asarray(data["native_affine"], dtype=np.float64).reshape(4, 4),
                spacing_mm=float(data["spacing_mm"]),
                model_shape=tuple(int(n) for n in data["model_shape"]),  # type: ignore[arg-type]
                model_affine=np.asarray(data["model_affine"], dtype=np.float64).reshape(4, 4),
                resampled=bool(data["resampled"]),
                orientation=np.asarray(data["orientation"], dtype=np.float64).reshape(3, 2),
                crop_start=tuple(int(n) for n in data["crop_start"]),  # type: ignore[arg-type]
                brain_fits=bool(data.get("brain_fits", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Ct2mriError(f"grid record is incomplete or malformed ({exc})") from None
        return record

    @property
    def model_shape_xyz(self) -> tuple[int, int, int]:
        z, h, w = self.model_shape
        return (w, h, z)


def model_reference(record: GridRecord) -> Volume:
    """A data-less :class:`Volume` of the model grid in (x, y, z) order, to write model arrays."""
    return Volume(
        data=np.zeros(record.model_shape_xyz, dtype=np.uint8),
        affine=np.asarray(record.model_affine, dtype=np.float64).copy(),
        description="model grid",
    )


def model_to_xyz(model_array: np.ndarray) -> np.ndarray:
    """(Z, H, W) model array -> (x, y, z) array for NIfTI on the model affine."""
    return np.asarray(model_array).transpose(2, 1, 0)


def _is_exact(affine: np.ndarray, spacing: float) -> tuple[bool, np.ndarray]:
    """Whether reorientation alone reaches an RAS grid of ``spacing``; also the ornt to use."""
    ornt = voxel_order(affine)
    matrix = affine[:3, :3]
    # canonical axis c takes native axis i with ornt[i, 0] == c, flipped when ornt[i, 1] == -1
    canon = np.zeros((3, 3))
    for i, (c, flip) in enumerate(ornt):
        canon[:, int(c)] = matrix[:, i] * flip
    diag = np.diag(canon)
    off = canon - np.diag(diag)
    aligned = bool(np.all(np.abs(off) <= _AXIS_TOL * np.abs(diag).max()) and np.all(diag > 0))
    same_spacing = bool(np.all(np.abs(diag - spacing) <= _SPACING_TOL * spacing))
    return aligned and same_spacing, ornt


def _window(lo: float, hi: float, size: int | None, extent: int | None, margin: float) -> tuple[int, int]:
    """Start and size of a window along one axis covering the brain's [lo, hi] (grid indices)."""
    if size is None:
        start = math.floor(lo - margin + 1e-6)
        stop = math.ceil(hi + margin - 1e-6)
        if extent is not None:
            start, stop = max(start, 0), min(stop, extent - 1)
        return start, stop - start + 1
    centre = (lo + hi) / 2.0
    start = math.floor(centre - (size - 1) / 2.0 + 0.5)
    return start, size


def _mask_bounds(mask: np.ndarray, affine_to_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise Ct2mriError("the brain mask is empty; cannot place the volume on the model grid")
    # extreme voxel centres along each grid axis are reached at extreme native indices only when
    # the map is axis-aligned, so transform all mask voxels (cheap: one matrix product)
    grid = idx @ affine_to_grid[:3, :3].T + affine_to_grid[:3, 3]
    return grid.min(axis=0), grid.max(axis=0)


def _check_order(order: str) -> Interpolation:
    if order not in ("linear", "nearest"):
        raise ValueError(f"order must be 'linear' or 'nearest', not {order!r}")
    return order  # type: ignore[return-value]


def plan_model_grid(
    volume: Volume, brain_mask: np.ndarray, config: PreprocessConfig, rotation: np.ndarray | None = None
) -> GridRecord:
    """The model grid of ``volume`` around ``brain_mask`` (same grid as the volume), without resampling.

    ``rotation`` (3 x 3, RAS; the head pose) orients the grid's axes: column c is the world
    direction of model axis c (x, y, z = left-right, posterior-anterior, inferior-superior), so
    slices are cut in the head's canonical frame.  Without it the grid follows the world axes.
    """
    mask = np.asarray(brain_mask).astype(bool)
    if mask.shape != volume.shape:
        raise Ct2mriError(f"{volume.name}: brain mask shape {mask.shape} differs from the volume {volume.shape}")
    spacing = float(config.spacing_mm)
    if spacing <= 0:
        raise Ct2mriError(f"model spacing must be positive, got {spacing}")
    height, width = (int(n) for n in config.in_plane)
    affine = np.asarray(volume.affine, dtype=np.float64)
    shape = volume.shape
    turned = rotation is not None and not np.allclose(rotation, np.eye(3), atol=1e-6)
    exact, ornt = _is_exact(affine, spacing)
    exact = exact and not turned
    frame = np.asarray(rotation, dtype=np.float64) if turned else np.eye(3)
    margin = float(config.margin_mm) / spacing

    if exact:
        grid_affine = canonical_affine(affine, ornt, shape)
        extent = [0, 0, 0]
        for i, (c, _) in enumerate(ornt):
            extent[int(c)] = shape[i]
    else:
        corners = np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1) for c in (0, shape[2] - 1)])
        canonical = (corners @ affine[:3, :3].T + affine[:3, 3]) @ frame  # corners in the grid's frame
        lo_world, hi_world = canonical.min(axis=0), canonical.max(axis=0)
        grid_affine = np.eye(4)
        grid_affine[:3, :3] = frame * spacing
        grid_affine[:3, 3] = frame @ lo_world
        extent = [int(math.floor((hi_world[a] - lo_world[a]) / spacing + 1e-6)) + 1 for a in range(3)]

    to_grid = np.linalg.inv(grid_affine) @ affine
    lo, hi = _mask_bounds(mask, to_grid)
    x0, nx = _window(lo[0], hi[0], width, None, margin)
    y0, ny = _window(lo[1], hi[1], height, None, margin)
    z0, nz = _window(lo[2], hi[2], None, extent[2], margin)
    if nz < 1:
        raise Ct2mriError(f"{volume.name}: the brain lies outside the scanned slices")
    start = np.array([x0, y0, z0])
    model_affine = grid_affine.copy()
    model_affine[:3, 3] = grid_affine[:3, :3] @ start + grid_affine[:3, 3]
    fits = bool(np.all(lo[:2] >= start[:2] - 1e-6) and np.all(hi[:2] <= start[:2] + np.array([nx, ny]) - 1 + 1e-6))
    return GridRecord(
        native_shape=shape,
        native_affine=affine.copy(),
        spacing_mm=spacing,
        model_shape=(nz, ny, nx),
        model_affine=model_affine,
        resampled=not exact,
        orientation=np.asarray(ornt, dtype=np.float64),
        crop_start=(int(x0), int(y0), int(z0)),
        brain_fits=fits,
    )


def apply_model_grid(
    array: np.ndarray, record: GridRecord, order: Interpolation = "linear", pad_value: float = 0.0
) -> np.ndarray:
    """Put another native-grid array (a mask, the other modality) on a recorded model grid."""
    order = _check_order(order)
    array = np.asarray(array)
    if tuple(array.shape) != tuple(record.native_shape):
        raise Ct2mriError(f"array shape {array.shape} differs from the recorded native grid {record.native_shape}")
    nx, ny, nz = record.model_shape_xyz
    if not record.resampled:
        canon = canonical_array(array, record.orientation)
        out = np.full((nx, ny, nz), pad_value, dtype=np.float32)
        src, dst = _overlap(record.crop_start, (nx, ny, nz), canon.shape)
        out[dst] = canon[src]
        return out.transpose(2, 1, 0).copy()
    image = sitk_from_array(array.astype(np.float32), record.native_affine)
    if order == "linear":
        native_spacing = np.linalg.norm(record.native_affine[:3, :3], axis=0)
        image = anti_aliased(image, native_spacing, np.full(3, record.spacing_mm))
    out = resample_onto_grid(image, (nx, ny, nz), record.model_affine, None, order, pad_value, extrapolate=True)
    out[_outside_native(record)] = pad_value
    return out.transpose(2, 1, 0).astype(np.float32, copy=True)


def resample_onto_model_grid(
    volume: Volume, record: GridRecord, transform: Any = None, order: Interpolation = "linear", pad_value: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Put a volume on its own grid (the MRI of a pair) onto a model grid planned on another scan.

    ``transform`` (ITK, LPS mm) maps points of the model grid's world to the volume's world
    (identity when None); linear resampling is anti-aliased from the volume's spacing to the
    model's.  Returns the (Z, H, W) float32 array and the boolean (Z, H, W) share of the model
    grid that lies inside the volume's field of view (elsewhere the array holds ``pad_value``).
    """
    order = _check_order(order)
    nx, ny, nz = record.model_shape_xyz
    image = sitk_from_array(np.asarray(volume.data, dtype=np.float32), volume.affine)
    if order == "linear":
        image = anti_aliased(image, np.asarray(volume.spacing, dtype=np.float64), np.full(3, record.spacing_mm))
    out = resample_onto_grid(image, (nx, ny, nz), record.model_affine, transform, order, pad_value)
    ones = sitk_from_array(np.ones(volume.shape, dtype=np.uint8), volume.affine)
    inside = resample_onto_grid(ones, (nx, ny, nz), record.model_affine, transform, "nearest", 0.0) > 0.5
    return out.transpose(2, 1, 0).astype(np.float32, copy=True), inside.transpose(2, 1, 0).copy()


def _outside_native(record: GridRecord) -> np.ndarray:
    """Model voxels (x, y, z) farther than one model voxel beyond the native field of view.

    A rim one model voxel wide is kept (filled by nearest-voxel extrapolation) so that native
    voxels on the edge of the field of view still find model values on both sides on the way
    back; everything farther out is padding.
    """
    to_native = np.linalg.inv(record.native_affine) @ record.model_affine
    native_spacing = np.linalg.norm(record.native_affine[:3, :3], axis=0)
    nx, ny, nz = record.model_shape_xyz
    ii, jj, kk = (np.arange(n, dtype=np.float32) for n in (nx, ny, nz))
    outside = np.zeros((nx, ny, nz), dtype=bool)
    for axis in range(3):
        row = to_native[axis].astype(np.float32)
        cont = row[0] * ii[:, None, None] + row[1] * jj[None, :, None] + row[2] * kk[None, None, :] + row[3]
        rim = 0.5 + record.spacing_mm / native_spacing[axis]
        outside |= (cont < -rim) | (cont > record.native_shape[axis] - 1 + rim)
    return outside


def _overlap(
    start: tuple[int, int, int], size: tuple[int, int, int], extent: tuple[int, ...]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of the source (canonical grid) and the window that overlap."""
    src, dst = [], []
    for s, n, e in zip(start, size, extent):
        a, b = max(s, 0), min(s + n, e)
        if b <= a:
            a = b = max(min(s, e), 0)
        src.append(slice(a, b))
        dst.append(slice(a - s, a - s + (b - a)))
    return tuple(src), tuple(dst)


def from_model_grid(
    model_array: np.ndarray, record: GridRecord, fill: float = 0.0, order: Interpolation = "linear"
) -> np.ndarray:
    """Map a (Z, H, W) model array back onto every voxel of the native grid.

    Returns an array of the native shape (write it with the native affine); voxels outside the
    model window get ``fill``.
    """
    order = _check_order(order)
    model_array = np.asarray(model_array)
    if tuple(model_array.shape) != tuple(record.model_shape):
        raise Ct2mriError(f"model array shape {model_array.shape} differs from the recorded {record.model_shape}")
    window = model_array.transpose(2, 1, 0)
    if not record.resampled:
        shape = record.native_shape
        canon_shape = [0, 0, 0]
        for i, (c, _) in enumerate(record.orientation):
            canon_shape[int(c)] = shape[i]
        canon = np.full(canon_shape, fill, dtype=np.result_type(model_array.dtype, np.float32))
        src, dst = _overlap(record.crop_start, record.model_shape_xyz, tuple(canon_shape))
        canon[src] = window[dst]
        return storage_order(canon, record.orientation)
    image = sitk_from_array(window.astype(np.float32), record.model_affine)
    if order == "linear":
        direction = record.native_affine[:3, :3] / np.linalg.norm(record.native_affine[:3, :3], axis=0)
        native_spacing = np.linalg.norm(record.native_affine[:3, :3], axis=0)
        along_world = np.abs(direction) @ native_spacing
        image = anti_aliased(image, np.full(3, record.spacing_mm), along_world)
    return resample_onto_grid(image, record.native_shape, record.native_affine, None, order, fill).astype(np.float32)
