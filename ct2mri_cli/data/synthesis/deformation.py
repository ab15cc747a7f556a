"""Spatial side of a subject: the output grid and the warp that resamples the source onto it.

A rotation/scaling/shift, a smooth random displacement and the ventricle pull are composed on a
coarse grid (``COARSE_MM``) into one displacement field, so the CT, the T1 and the mask are
resampled together and stay exactly aligned.  Smooth random fields and the upsampling of coarse
fields onto the output grid live here too, as they share that coarse grid.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ...io.images import resample_onto_grid, sitk_from_array
from .anatomy import Anatomy
from .imaging import _RAS_TO_LPS, _spacing, gaussian_blur, trilinear
from .subject import SubjectParams

COARSE_MM = 4.0


def output_grid(anatomy: Anatomy, spacing_mm: float | None = None) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of an axis-aligned RAS grid covering the source's field of view."""
    src_spacing = _spacing(anatomy.affine)
    if spacing_mm is None:
        return anatomy.shape, anatomy.affine.copy()
    if not spacing_mm > 0:
        raise ValueError(f"spacing must be positive, got {spacing_mm}")
    extent = (np.asarray(anatomy.shape) - 1) * src_spacing
    shape = tuple(int(n) for n in np.floor(extent / spacing_mm + 1e-6).astype(int) + 1)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(np.sign(np.diag(anatomy.affine[:3, :3])) * spacing_mm)
    start = anatomy.affine[:3, 3]
    covered = (np.asarray(shape) - 1) * spacing_mm
    affine[:3, 3] = start + np.sign(np.diag(anatomy.affine[:3, :3])) * (extent - covered) / 2.0
    return shape, affine  # type: ignore[return-value]


def _rotation(degrees: tuple[float, float, float]) -> np.ndarray:
    ax, ay, az = (math.radians(d) for d in degrees)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def turned_rotation(degrees: tuple[float, float, float], turn: np.ndarray) -> tuple[float, float, float]:
    """The rotation angles (as ``SubjectParams.rotation_deg``) of ``turn`` (3 x 3, RAS) after ``degrees``."""
    m = np.asarray(turn, dtype=np.float64) @ _rotation(degrees)
    return (
        math.degrees(math.atan2(m[2, 1], m[2, 2])),
        math.degrees(-math.asin(float(np.clip(m[2, 0], -1.0, 1.0)))),
        math.degrees(math.atan2(m[1, 0], m[0, 0])),
    )


def _coarse_grid(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    step_mm: float = COARSE_MM,
) -> tuple[tuple[int, int, int], np.ndarray]:
    """A coarse grid covering a fine one with one extra node beyond each face."""
    spacing = _spacing(affine)
    direction = affine[:3, :3] / spacing
    extent = (np.asarray(shape) - 1) * spacing
    n = np.ceil(extent / step_mm).astype(int) + 3
    coarse = np.eye(4)
    coarse[:3, :3] = direction * step_mm
    coarse[:3, 3] = affine[:3, 3] - direction @ np.full(3, step_mm)
    return tuple(int(v) for v in n), coarse  # type: ignore[return-value]


def _grid_points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def smooth_random_field(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    affine: np.ndarray,
    fwhm_mm: float,
    components: int = 1,
) -> np.ndarray:
    """Gaussian random field(s) with correlation ``fwhm_mm``, each scaled to unit SD.

    Returns (components, X, Y, Z) float32.
    """
    out = np.empty((components,) + tuple(shape), dtype=np.float32)
    for c in range(components):
        noise = rng.standard_normal(shape, dtype=np.float32)
        field_c = gaussian_blur(noise, affine, (fwhm_mm, fwhm_mm, fwhm_mm))
        out[c] = (field_c - field_c.mean()) / max(float(field_c.std()), 1e-12)
    return out


def pullback_field(
    anatomy: Anatomy,
    params: SubjectParams,
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    fine_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Where each node of a coarse grid over the output samples the source (world mm, RAS).

    Returns (points (X, Y, Z, 3), coarse affine).  Composes, from output to source: the inverse
    of a rotation/scaling/shift about the brain centre, a smooth random displacement, the fine
    warp (drawn from ``fine_rng``, needed when ``params`` has one) and the ventricle pull
    (negative: away from the ventricles, which shrinks them); a positive ``asymmetry`` widens the
    right hemisphere and narrows the left.
    """
    cshape, caffine = _coarse_grid(shape, affine)
    x = _grid_points(cshape, caffine)
    centre = anatomy.centre_mm
    rot = _rotation(params.rotation_deg)
    inv_linear = np.diag(1.0 / np.asarray(params.scale)) @ rot.T
    y = (x - centre - np.asarray(params.shift_mm)) @ inv_linear.T + centre
    if params.asymmetry:
        lateral = y[..., 0] - centre[0]
        y[..., 0] = centre[0] + lateral * (1.0 - params.asymmetry * np.tanh(lateral / 15.0))
    if params.warp_rms_mm > 0:
        disp = smooth_random_field(rng, cshape, caffine, params.warp_fwhm_mm, 3)
        disp = np.moveaxis(disp, 0, -1) * np.float32(params.warp_rms_mm / math.sqrt(3.0))
        y = y + disp
    else:
        rng.standard_normal(3)  # keep the draw sequence independent of the warp setting
    if params.fine_warp_rms_mm > 0:
        if fine_rng is None:
            raise ValueError("a fine warp needs its own random stream (fine_rng)")
        fine = smooth_random_field(fine_rng, cshape, caffine, params.fine_warp_fwhm_mm, 3)
        y = y + np.moveaxis(fine, 0, -1) * np.float32(params.fine_warp_rms_mm / math.sqrt(3.0))
    if params.ventricle_mm:
        pull = np.moveaxis(anatomy.ventricle_pull, 0, -1)
        y = y + params.ventricle_mm * trilinear(pull, anatomy.coarse_affine, y)
    return y, caffine


def displacement_transform(points: np.ndarray, caffine: np.ndarray) -> sitk.Transform:
    """A SimpleITK displacement-field transform sending coarse nodes to ``points`` (RAS mm)."""
    cshape = points.shape[:3]
    nodes = _grid_points(cshape, caffine)
    disp_lps = (points - nodes) * _RAS_TO_LPS
    field_img = sitk.Cast(sitk_from_array(disp_lps, caffine), sitk.sitkVectorFloat64)
    return sitk.DisplacementFieldTransform(field_img)


def warp_onto(
    array: np.ndarray,
    src_affine: np.ndarray,
    transform: sitk.Transform,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    default: float,
) -> np.ndarray:
    """Resample ``array`` (on ``src_affine``) through ``transform`` onto the output grid, linearly."""
    src = sitk_from_array(np.asarray(array, dtype=np.float32), src_affine)
    return resample_onto_grid(src, shape, affine, transform, "linear", default)


def upsample_coarse(
    coarse: np.ndarray, caffine: np.ndarray, shape: tuple[int, int, int], affine: np.ndarray
) -> np.ndarray:
    """Linear interpolation of a coarse field onto a fine grid with the same axis directions.

    Separable (one axis at a time), which is much cheaper than a general resampling.
    """
    out = np.asarray(coarse, dtype=np.float32)
    for axis in range(3):
        step_c = float(caffine[:3, :3][:, axis] @ np.sign(affine[:3, :3][:, axis]))
        step_f = float(np.abs(affine[:3, :3][:, axis]).sum())
        offset = float((affine[:3, 3] - caffine[:3, 3]) @ np.sign(affine[:3, :3][:, axis]))
        pos = np.clip((offset + step_f * np.arange(shape[axis])) / step_c, 0, out.shape[axis] - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), out.shape[axis] - 2)
        w = (pos - lo).astype(np.float32)
        bshape = [1, 1, 1]
        bshape[axis] = -1
        w = w.reshape(bshape)
        out = np.take(out, lo, axis=axis) * (1 - w) + np.take(out, lo + 1, axis=axis) * w
    return out
