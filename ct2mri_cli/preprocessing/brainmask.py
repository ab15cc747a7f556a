"""Brain extraction from a CT in Hounsfield units, by thresholds and morphology (no network).

Steps, on the volume reoriented to RAS so that "axial" means the superior axis:

1. head: everything denser than air (> ``air_hu``), largest component (drops head holders and
   table parts separated from the head by air);
2. skull: head voxels above ``bone_hu``;
3. inside the skull: per axial slice, the convex hull of the skull minus the bone.  Hulls
   tolerate gaps in the ring (thin temporal bone, sutures, burr holes, defects) that defeat a
   hole fill; what the hull adds below the skull base is removed by the next steps;
4. intracranial soft tissue: inside the skull, in ``soft_hu``; its largest connected component;
5. leaks through foramina (orbits, skull base, foramen magnum) are cut by an opening of radius
   ``opening_mm``; the largest component is kept again and dilated back by the same radius,
   but only into soft tissue inside the skull;
6. holes (calcifications, vessels) filled.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from ..io.images import array_from_sitk, canonical_order, sitk_from_voxels, smoothed_array, storage_order
from ..io.volumes import Volume


@dataclass(frozen=True)
class BrainMaskParams:
    """Thresholds (HU) and radii (mm) of :func:`extract_brain_ct`."""

    air_hu: float = -400.0
    bone_hu: float = 300.0
    wall_hu: float = 150.0
    soft_hu: tuple[float, float] = (-10.0, 90.0)
    opening_mm: float = 4.0
    reach_mm: float = 250.0
    rim_mm: float = 3.0
    stem_area_fraction: float = 0.03
    smoothing_mm: float = 1.0


def check_hu(data: np.ndarray, source: str = "CT") -> str | None:
    """Check that a CT looks like Hounsfield units.

    Raises :class:`Ct2mriError` when there is clearly no HU scale (no value below zero, e.g. an
    MRI given as CT or CT numbers without their rescale intercept); returns a warning string when
    the intensities are unusual (no air, no bone, soft tissue off), else None.
    """
    data = np.asarray(data)
    lo = float(data.min())
    if lo >= 0:
        raise Ct2mriError(
            f"{source}: intensities are not Hounsfield units (minimum {lo:g}, no air near -1000); "
            "is this an MRI, or a CT without its rescale intercept?"
        )
    sample = data.ravel()[:: max(1, data.size // 2_000_000)]
    air = float(np.mean(sample < -900))
    bone = float(np.mean(sample > 300))
    problems = []
    if air < 0.01:
        problems.append(f"only {100 * air:.2g}% of voxels below -900 HU (air)")
    if bone < 0.001:
        problems.append(f"only {100 * bone:.2g}% of voxels above 300 HU (bone)")
    soft = sample[(sample > -100) & (sample < 150)]
    if soft.size < 0.01 * max(1, int(np.count_nonzero(sample > -900))):
        problems.append(
            f"only {100 * soft.size / max(1, int(np.count_nonzero(sample > -900))):.2g}% of the head's "
            "voxels in -100..150 HU (soft tissue)"
        )
    elif soft.size:
        median = float(np.median(soft))
        if not -20.0 <= median <= 80.0:
            problems.append(f"soft tissue median {median:.0f} HU (expected about 20-45)")
    if problems:
        return f"{source}: intensities do not look like a head CT in HU: " + "; ".join(problems)
    return None


def _radius_voxels(radius_mm: float, spacing: tuple[float, float, float]) -> list[int]:
    return [max(0, int(round(radius_mm / s))) for s in spacing]


def _largest_component(image: Any) -> Any:
    import SimpleITK as sitk

    labels = sitk.RelabelComponent(sitk.ConnectedComponent(image), sortByObjectSize=True)
    return sitk.Equal(labels, 1)


def _image(mask: np.ndarray, spacing: tuple[float, float, float]) -> Any:
    return sitk_from_voxels(mask.astype(np.uint8), spacing)


def _array(image: Any) -> np.ndarray:
    return array_from_sitk(image).astype(bool)


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _convex_hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Counter-clockwise convex hull of integer 2D points (monotone chain)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts
    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _fill_convex(plane: np.ndarray) -> np.ndarray:
    """The 2D convex hull of a boolean image, rasterised (pixel centres inside or on the edge)."""
    rows = np.flatnonzero(plane.any(axis=1))
    if rows.size == 0:
        return plane.copy()
    sub = plane[rows]
    first = sub.argmax(axis=1)
    last = plane.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    # the extreme pixels of every row carry the whole hull
    points = [(int(r), int(c)) for r, c in zip(rows, first)] + [(int(r), int(c)) for r, c in zip(rows, last)]
    hull = _convex_hull(points)
    if len(hull) < 3:
        return plane.copy()
    ii, jj = np.ogrid[: plane.shape[0], : plane.shape[1]]
    inside = np.ones(plane.shape, dtype=bool)
    for a, b in zip(hull, hull[1:] + hull[:1]):
        inside &= (b[0] - a[0]) * (jj - a[1]) - (b[1] - a[1]) * (ii - a[0]) >= 0
    return inside | plane


def enclosed_by_bone(bone: np.ndarray, spacing: tuple[float, float, float], reach_mm: float) -> np.ndarray:
    """Voxels with bone within ``reach_mm`` in at least five of the six axis directions.

    The cranial cavity is walled by bone on every side but one at most (the foramen magnum below
    the brainstem); the face and the neck open onto air in two or more of the six directions."""
    sides = np.zeros(bone.shape, dtype=np.int8)
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = bone.shape[axis]
        reach = int(reach_mm / spacing[axis])
        far = bone.shape[axis] + reach + 2
        kind = np.int16 if 2 * far < np.iinfo(np.int16).max else np.int32
        index = np.arange(bone.shape[axis], dtype=kind).reshape(shape)
        # the index of the nearest bone before and after each voxel along the axis
        before = np.maximum.accumulate(np.where(bone, index, kind(-far)), axis=axis)
        sides += np.less_equal(index - before, reach)
        del before
        after = np.flip(
            np.minimum.accumulate(np.flip(np.where(bone, index, kind(2 * far)), axis=axis), axis=axis), axis=axis
        )
        sides += after - index <= reach
        del after
    return sides >= 5


def _cut_below_the_stem(brain: np.ndarray, fraction: float, slice_mm: float, run_mm: float = 4.0) -> np.ndarray:
    """Cut the mask below the first run of ``run_mm`` of axial sections, going down from the
    largest, whose areas fall under ``fraction`` of the largest: the brainstem narrows to that
    at the foramen magnum, and the cord below is not brain."""
    areas = brain.sum(axis=(0, 1))
    largest = int(np.argmax(areas))
    small = areas < fraction * areas[largest]
    run = max(1, int(round(run_mm / slice_mm)))
    for z in range(largest - 1, run - 2, -1):
        if small[z - run + 1 : z + 1].all():
            out = brain.copy()
            out[:, :, : z + 1] = False
            return out
    return brain


def _fill_axial_holes(
    mask: np.ndarray, bone: np.ndarray, spacing: tuple[float, float, float], max_bone_ml: float = 0.5
) -> np.ndarray:
    """Holes enclosed within each axial section (CSF spaces open to the outside only through the
    slices above or below), except holes holding more bone than a calcification: a compartment
    walled off by bone is not brain."""
    import SimpleITK as sitk

    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = mask.copy()
    for z in np.flatnonzero(mask.any(axis=(0, 1))):
        plane = sitk_from_voxels(mask[:, :, z].astype(np.uint8))
        holes = array_from_sitk(sitk.BinaryFillhole(plane, fullyConnected=False)) > 0
        holes &= ~mask[:, :, z]
        if not holes.any():
            continue
        labels = array_from_sitk(sitk.ConnectedComponent(sitk_from_voxels(holes.astype(np.uint8))))
        bone_ml = np.bincount(labels[bone[:, :, z]].ravel(), minlength=int(labels.max()) + 1) * voxel_ml
        walled = np.flatnonzero(bone_ml > max_bone_ml)
        out[:, :, z] |= holes & ~np.isin(labels, walled[walled > 0])
    return out


def _extract_ras(hu: np.ndarray, spacing: tuple[float, float, float], params: BrainMaskParams) -> np.ndarray:
    import SimpleITK as sitk

    head = _array(_largest_component(_image(hu > params.air_hu, spacing)))
    bone = (hu > params.bone_hu) & head
    # the skull's axial cross-sections are close to convex; hulls tolerate bone gaps and defects
    hull = np.stack([_fill_convex(bone[:, :, z]) for z in range(hu.shape[2])], axis=-1)
    # the walls counted more widely than bone itself: a thick slice smears a thin skull below bone_hu
    enclosed = hull & enclosed_by_bone(head & (hu > params.wall_hu), spacing, params.reach_mm)
    inside = enclosed & ~bone & head
    # noise scatters single voxels out of the soft-tissue range: judge tissue on a smoothed copy
    smooth = smoothed_array(hu, spacing, params.smoothing_mm)
    soft = inside & (smooth >= params.soft_hu[0]) & (smooth <= params.soft_hu[1])
    if not soft.any():
        raise Ct2mriError(
            "no intracranial soft tissue found: is the skull in the field of view? "
            "(a skull-stripped CT has no skull to find the brain by: give its brain with --mask)"
        )
    brain = _largest_component(_image(soft, spacing))

    radius = _radius_voxels(params.opening_mm, spacing)
    if any(radius):
        opened = sitk.BinaryMorphologicalOpening(brain, radius, sitk.sitkBall)
        if array_from_sitk(opened).any():
            core = _largest_component(opened)
            grown = sitk.BinaryDilate(core, radius, sitk.sitkBall)
            brain = _largest_component(sitk.And(grown, _image(soft, spacing)))

    brain = _array(sitk.BinaryFillhole(brain, fullyConnected=False))
    brain = _cut_below_the_stem(_fill_axial_holes(brain, bone, spacing), params.stem_area_fraction, spacing[2])
    # the rim where the brain meets the inner table is blurred with bone: grow into it
    # partial volume with the inner table spreads in-plane as far as a slice is thick
    rim = _radius_voxels(max(params.rim_mm, max(spacing)), spacing)
    if any(rim):
        grown = _array(sitk.BinaryDilate(_image(brain, spacing), rim, sitk.sitkBall))
        rim_voxels = grown & ~brain & enclosed & head & (hu < params.bone_hu) & (smooth > params.soft_hu[1])
        brain = _array(_largest_component(_image(brain | rim_voxels, spacing)))
    return brain


def extract_brain_ct(
    volume_or_array: Volume | np.ndarray,
    spacing: tuple[float, float, float] | None = None,
    params: BrainMaskParams = BrainMaskParams(),
) -> np.ndarray:
    """Boolean brain mask of a head CT in HU, on the input's grid.

    Pass a :class:`Volume` (the axial axis is found from its affine), or an array with its voxel
    ``spacing`` in mm whose last axis is the inferior-superior one.  Unusual intensities raise a
    ``UserWarning``; no HU scale at all raises :class:`Ct2mriError`.
    """
    if isinstance(volume_or_array, Volume):
        source = volume_or_array.name
        canon, stored = canonical_order(volume_or_array)
        data = np.asarray(canon.data, dtype=np.float32)
        warning = check_hu(data, source)
        if warning:
            warnings.warn(warning, stacklevel=2)
        try:
            mask = _extract_ras(data, canon.spacing, params)
        except Ct2mriError as exc:
            hint = f" ({warning}: is it in Hounsfield units?)" if warning else ""
            raise Ct2mriError(f"{source}: {exc}{hint}") from None
        return storage_order(mask, stored)
    if spacing is None:
        raise ValueError("spacing is required when passing an array")
    data = np.asarray(volume_or_array, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"a 3D array is needed, got shape {data.shape}")
    warning = check_hu(data)
    if warning:
        warnings.warn(warning, stacklevel=2)
    return _extract_ras(data, tuple(float(s) for s in spacing), params)  # type: ignore[arg-type]
