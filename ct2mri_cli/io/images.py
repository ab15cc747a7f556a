"""The one bridge between numpy arrays and SimpleITK images.

Arrays are indexed (i, j, k) like nibabel and placed in the world by a 4x4 RAS+ affine in mm;
SimpleITK holds the same voxels as (k, j, i) arrays with LPS geometry.  Every crossing between
the two goes through here: conversion (with the affine, with a voxel size only, or on the grid of
another image), resampling onto a grid, smoothing for a coarser spacing, and the exact
reordering of a scan's voxels into RAS order and back.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import nibabel as nib
import numpy as np

if TYPE_CHECKING:
    from .volumes import Volume

Interpolation = Literal["linear", "nearest"]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
RAS_ORDER = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)  # nibabel's orientation of RAS voxel order
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _itk_layout(data: np.ndarray, spatial: int) -> np.ndarray:
    """``data`` with its first ``spatial`` axes reversed (any component axis stays last), contiguous."""
    order = (*reversed(range(spatial)), *range(spatial, data.ndim))
    return np.ascontiguousarray(data.transpose(order))


def _itk_geometry(affine: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Origin, spacing and direction (LPS) of a grid placed by a RAS+ affine with orthogonal axes."""
    affine = np.asarray(affine, dtype=np.float64)
    matrix = affine[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    direction = LPS_TO_RAS @ (matrix / spacing)
    origin = LPS_TO_RAS @ affine[:3, 3]
    return [float(v) for v in origin], [float(s) for s in spacing], [float(v) for v in direction.ravel()]


def sitk_from_array(data: np.ndarray, affine: np.ndarray) -> Any:
    """A SimpleITK image of an (i, j, k) array, or of an (i, j, k, c) array as a vector image,
    placed by a RAS+ affine (orthogonal axes)."""
    import SimpleITK as sitk

    data = np.asarray(data)
    image = sitk.GetImageFromArray(_itk_layout(data, 3), isVector=data.ndim == 4)
    origin, spacing, direction = _itk_geometry(affine)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin(origin)
    return image


def sitk_from_voxels(data: np.ndarray, spacing: Sequence[float] | None = None) -> Any:
    """A SimpleITK image of an (i, j) or (i, j, k) array with a voxel size only (unit voxels when
    None): for filters that need no place in the world (morphology, components, distances,
    smoothing) and for DICOM slices, which carry their position in tags."""
    import SimpleITK as sitk

    data = np.asarray(data)
    image = sitk.GetImageFromArray(_itk_layout(data, data.ndim))
    if spacing is not None:
        image.SetSpacing([float(s) for s in spacing])
    return image


def sitk_on_grid_of(data: np.ndarray, reference: Any) -> Any:
    """A SimpleITK image of an (i, j, k) array on the grid of ``reference``, its geometry copied exactly."""
    image = sitk_from_voxels(data)
    image.CopyInformation(reference)
    return image


def sitk_from_picture(pixels: np.ndarray) -> Any:
    """A 2D SimpleITK image of a picture, (rows, columns) grey or (rows, columns, 3) colour, to write it."""
    import SimpleITK as sitk

    pixels = np.asarray(pixels)
    return sitk.GetImageFromArray(np.ascontiguousarray(pixels), isVector=pixels.ndim == 3)


def array_from_sitk(image: Any) -> np.ndarray:
    """The (i, j[, k]) array of a SimpleITK image (a vector image's components last)."""
    import SimpleITK as sitk

    array = sitk.GetArrayFromImage(image)
    dimension = image.GetDimension()
    return array.transpose(*reversed(range(dimension)), *range(dimension, array.ndim))


def affine_from_sitk(image: Any) -> np.ndarray:
    """RAS+ affine (nibabel convention) of a SimpleITK image (which stores LPS geometry)."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)[:3]
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)[:3]
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ direction @ np.diag(spacing)
    affine[:3, 3] = LPS_TO_RAS @ origin
    return affine


def resample_onto_grid(
    image: Any,
    shape: Sequence[int],
    affine: np.ndarray,
    transform: Any = None,
    interpolation: Interpolation = "linear",
    fill: float = 0.0,
    extrapolate: bool = False,
) -> np.ndarray:
    """``image`` resampled onto the grid of ``shape`` placed by the RAS+ ``affine``, as an
    (i, j, k) array of the image's pixel type.

    ``transform`` (ITK, LPS mm) maps grid points to image points (identity when None); points
    outside the image get ``fill``, or with ``extrapolate`` the nearest voxel's value."""
    import SimpleITK as sitk

    if interpolation not in ("linear", "nearest"):
        raise ValueError(f"interpolation must be 'linear' or 'nearest', not {interpolation!r}")
    origin, spacing, direction = _itk_geometry(affine)
    out = sitk.Resample(
        image,
        [int(n) for n in shape],
        transform if transform is not None else sitk.Transform(),
        sitk.sitkLinear if interpolation == "linear" else sitk.sitkNearestNeighbor,
        origin,
        spacing,
        direction,
        float(fill),
        image.GetPixelID(),
        bool(extrapolate),
    )
    return array_from_sitk(out)


def smoothed_array(data: np.ndarray, spacing: Sequence[float], sigma_mm: float) -> np.ndarray:
    """A 3D array (voxel size ``spacing`` in mm) smoothed by an isotropic Gaussian of ``sigma_mm``
    (float32; unchanged when ``sigma_mm`` <= 0).  A discrete kernel stays exact where sigma is
    below the voxel size (thick slices), where the recursive filter does not."""
    import SimpleITK as sitk

    if sigma_mm <= 0:
        return data
    image = sitk_from_voxels(np.asarray(data, dtype=np.float32), spacing)
    return array_from_sitk(sitk.DiscreteGaussian(image, [sigma_mm**2] * 3, 32, 0.01, True))


def smoothed_to_spacing(image: Any, mm: float, sigma_mm: float) -> Any:
    """``image`` smoothed by a Gaussian of ``sigma_mm`` and resampled (linear, float32) onto voxels
    of ``mm`` over the same origin, axes and field of view: a coarse copy to register."""
    import SimpleITK as sitk

    size = [max(1, int(round(n * s / mm))) for n, s in zip(image.GetSize(), image.GetSpacing())]
    smooth = sitk.SmoothingRecursiveGaussian(image, sigma_mm)
    return sitk.Resample(
        smooth,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


def anti_aliased(image: Any, source_spacing: np.ndarray, target_spacing: np.ndarray) -> Any:
    """``image`` smoothed before resampling from ``source_spacing`` to ``target_spacing`` (mm per
    axis): a Gaussian as wide as the target's voxels add to the source's, none along axes where
    the target is not coarser."""
    import SimpleITK as sitk

    sigma_mm = np.sqrt(np.maximum(target_spacing**2 - source_spacing**2, 0.0)) * FWHM_TO_SIGMA
    if np.all(sigma_mm < 0.05):
        return image
    return sitk.SmoothingRecursiveGaussian(image, [float(max(s, 1e-3)) for s in sigma_mm])


def voxel_order(affine: np.ndarray) -> np.ndarray:
    """The order of a grid's voxel axes as nibabel writes it: the RAS axis each follows, and its sign."""
    return nib.orientations.io_orientation(affine)


def canonical_array(array: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """An array in the voxel order ``stored`` put in RAS voxel order (a permutation and flips only)."""
    return np.ascontiguousarray(nib.orientations.apply_orientation(np.asarray(array), stored))


def canonical_affine(affine: np.ndarray, stored: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The affine of a grid of ``shape`` in voxel order ``stored`` once its voxels are in RAS order."""
    return affine @ nib.orientations.inv_ornt_aff(stored, shape)


def canonical_order(volume: Volume) -> tuple[Volume, np.ndarray | None]:
    """The scan with its voxels in RAS order (an exact permutation and flip, no interpolation) and
    its stored order, None when it is RAS already: how a scan was stored cannot change what is
    computed from it."""
    stored = voxel_order(volume.affine)
    if np.array_equal(stored, RAS_ORDER):
        return volume, None
    data = canonical_array(volume.data, stored)
    affine = canonical_affine(np.asarray(volume.affine, dtype=np.float64), stored, volume.shape)
    return dataclasses.replace(volume, data=data, affine=affine), stored


def storage_order(array: np.ndarray, stored: np.ndarray | None) -> np.ndarray:
    """An array in RAS voxel order back in the voxel order ``stored`` (None: RAS already)."""
    if stored is None:
        return array
    back = nib.orientations.ornt_transform(RAS_ORDER, stored)
    return np.ascontiguousarray(nib.orientations.apply_orientation(array, back))
