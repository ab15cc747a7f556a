"""Generic image helpers for RAS-indexed numpy arrays with a 4x4 affine (mm).

Arrays are indexed (x, y, z) in RAS; SimpleITK works in LPS (:mod:`ct2mri_cli.io.images`
converts).  Binary morphology, connected components, hole filling, distance maps, Gaussian
blurring, trilinear sampling and affine resampling, shared by the tissue classification, the
anatomies, the warp and the physics.  Nothing here knows about tissues or subjects.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ...io.images import (
    FWHM_TO_SIGMA,
    Interpolation,
    array_from_sitk,
    resample_onto_grid,
    sitk_from_array,
    sitk_from_voxels,
)

_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def _radius(mm: float, affine: np.ndarray) -> list[int]:
    return [max(1, int(round(mm / s))) for s in _spacing(affine)]


def _morph(mask: np.ndarray, affine: np.ndarray, op: str, mm: float) -> np.ndarray:
    """Binary dilate / erode / close / open with a ball of radius ``mm``.

    Small radii use ITK's binary morphology; large ones threshold a distance map, which costs
    the same whatever the radius.
    """
    mask = np.asarray(mask, dtype=bool)
    if op == "close":
        return _morph(_morph(mask, affine, "dilate", mm), affine, "erode", mm)
    if op == "open":
        return _morph(_morph(mask, affine, "erode", mm), affine, "dilate", mm)
    radius = _radius(mm, affine)
    if max(radius) <= 8:
        img = sitk_from_array(mask.astype(np.uint8), affine)
        if op == "dilate":
            return array_from_sitk(sitk.BinaryDilate(img, radius, sitk.sitkBall)).astype(bool)
        if op == "erode":  # as the complement of a dilation, which ITK does faster
            inverse = sitk_from_array((~mask).astype(np.uint8), affine)
            return ~array_from_sitk(sitk.BinaryDilate(inverse, radius, sitk.sitkBall)).astype(bool)
    if op == "dilate":
        return _distance_mm(mask, affine) <= mm
    if op == "erode":
        return _distance_mm(~mask, affine) > mm
    raise ValueError(f"unknown morphological operation {op!r}")


def _largest_component(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(sitk_from_array(mask.astype(np.uint8), affine)))
    return array_from_sitk(labels) == 1


def _cavities(mask: np.ndarray, affine: np.ndarray, min_mm3: float, min_y_mm: float) -> np.ndarray:
    """Components of at least ``min_mm3`` whose centroid lies anterior of ``min_y_mm``.

    In MNI space the air spaces of the head (nasal cavity, paranasal sinuses, mastoids) all lie
    in front of y = -60 mm; thick dark regions behind are occipital bone.
    """
    labels = sitk.ConnectedComponent(sitk_from_array(mask.astype(np.uint8), affine))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    keep = np.zeros(stats.GetNumberOfLabels() + 1, dtype=bool)
    for label in stats.GetLabels():
        centroid_ras = np.asarray(stats.GetCentroid(label)) * _RAS_TO_LPS
        keep[label] = stats.GetPhysicalSize(label) >= min_mm3 and centroid_ras[1] >= min_y_mm
    return keep[array_from_sitk(labels)]


def _fill_holes(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return array_from_sitk(sitk.BinaryFillhole(sitk_from_array(mask.astype(np.uint8), affine))).astype(bool)


def _fill_axial_holes(mask: np.ndarray) -> np.ndarray:
    """Fill holes in every axial (last-axis) slice; closes cavities open only through the neck.

    The slices are tiled into one 2D image, each followed by a background row and column, so a
    single 2D hole filling does them all: a slice's open background touches the separators,
    which reach the image border, while its enclosed holes stay enclosed.
    """
    x, y, z = mask.shape
    tiles = np.zeros((z, x + 1, y + 1), dtype=np.uint8)
    tiles[:, :x, :y] = np.moveaxis(mask, 2, 0)
    filled = array_from_sitk(sitk.BinaryFillhole(sitk_from_voxels(tiles.reshape(z * (x + 1), y + 1))))
    return np.moveaxis(filled.reshape(z, x + 1, y + 1)[:, :x, :y], 0, 2).astype(bool) | mask


def _distance_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Euclidean distance (mm) of every voxel to ``mask`` (0 inside)."""
    img = sitk_from_array(mask.astype(np.uint8), affine)
    dist = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return np.maximum(array_from_sitk(dist), 0.0).astype(np.float32)


def gaussian_blur(array: np.ndarray, affine: np.ndarray, fwhm_mm: tuple[float, float, float]) -> np.ndarray:
    """Gaussian blur with a per-axis FWHM in mm (axes x, y, z of the RAS array)."""
    variance = [float((f * FWHM_TO_SIGMA) ** 2) for f in fwhm_mm]
    if max(variance) <= 0:
        return np.asarray(array, dtype=np.float32)
    img = sitk_from_array(np.asarray(array, dtype=np.float32), affine)
    spacing = _spacing(affine)
    sigma_voxels = np.sqrt(variance) / spacing
    if sigma_voxels.min() >= 2.0:  # wide kernels: the recursive filter costs the same at any width
        out = sitk.SmoothingRecursiveGaussian(img, [float(v) for v in np.sqrt(variance)])
    else:
        width = int(max(3, 2 * math.ceil(3 * float(sigma_voxels.max())) + 1))
        out = sitk.DiscreteGaussian(img, variance, width, 0.001, True)
    return array_from_sitk(out).astype(np.float32, copy=False)


def trilinear(volume: np.ndarray, affine: np.ndarray, points: np.ndarray, fill: float = 0.0) -> np.ndarray:
    """Sample ``volume`` (X, Y, Z[, C]) at world points (..., 3) with trilinear interpolation."""
    inv = np.linalg.inv(affine)
    idx = points @ inv[:3, :3].T + inv[:3, 3]
    shape = np.asarray(volume.shape[:3])
    base = np.floor(idx).astype(np.int64)
    frac = (idx - base).astype(np.float32)
    out_shape = points.shape[:-1] + volume.shape[3:]
    out = np.zeros(out_shape, dtype=np.float32)
    weight_in = np.zeros(points.shape[:-1], dtype=np.float32)
    for corner in range(8):
        offs = np.array([(corner >> k) & 1 for k in range(3)])
        pos = base + offs
        w = np.prod(np.where(offs == 1, frac, 1.0 - frac), axis=-1)
        ok = np.all((pos >= 0) & (pos < shape), axis=-1)
        pos = np.clip(pos, 0, shape - 1)
        vals = volume[pos[..., 0], pos[..., 1], pos[..., 2]]
        wv = (w * ok).astype(np.float32)
        out += vals * (wv[..., None] if vals.ndim > wv.ndim else wv)
        weight_in += wv
    if fill != 0.0:
        missing = 1.0 - weight_in
        out += fill * (missing[..., None] if out.ndim > missing.ndim else missing)
    return out


def _resample_onto(
    array: np.ndarray,
    affine: np.ndarray,
    ref_shape: tuple[int, ...],
    ref_affine: np.ndarray,
    pullback: np.ndarray,
    interpolation: Interpolation,
    default: float,
) -> np.ndarray:
    """Resample ``array`` onto a reference grid, sampling the source at ``pullback`` @ x."""
    flip = np.diag([-1.0, -1.0, 1.0])
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in (flip @ pullback[:3, :3] @ flip).ravel()])
    transform.SetTranslation([float(v) for v in flip @ pullback[:3, 3]])
    return resample_onto_grid(sitk_from_array(array, affine), ref_shape, ref_affine, transform, interpolation, default)
