"""Scan checks: what about a CT could make its translation wrong, each named, measured and judged.

Every check has a value, the threshold it is judged by and a verdict: ``pass``; ``corrected``
(the scan was fixed, unambiguously, and says how); ``warning`` (the output is written, and the
warning goes to the user, the sidecar and the batch summary; ``--strict`` makes it a failure).
Checks that cannot be passed at all raise :class:`Ct2mriError` instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from ..io.volumes import Volume, gantry_tilt_degrees, slice_axis

THICK_SLICE_MM = 3.0
ADULT_BRAIN_ML = (900.0, 2100.0)  # parenchyma and ventricles of adults
NOT_A_BRAIN_ML = 300.0  # far below any brain: what was found is not one
EDGE_AREA_FRACTION = 0.15  # brain cross-section at the scan's first or last slice, of its largest
SECOND_COMPONENT_FRACTION = 0.05
AIR_HU, STORED_OFFSET, PADDING_BELOW = -1000.0, 1024.0, -1500.0


@dataclass
class Check:
    """One named check of a scan."""

    name: str
    value: Any
    threshold: str
    verdict: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def warnings_of(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.verdict == "warning"]


def check_hu_scale(volume: Volume) -> tuple[Volume, Check]:
    """Intensities stored without their rescale to Hounsfield units.

    A CT stored as HU + 1024 (air near 0, soft tissue near 1060) is shifted back when its air and
    soft-tissue peaks say so unambiguously; padding outside the field of view (-2000, -3024, ...)
    is set to air either way.  Scales that fit neither are left to the HU test of brain extraction,
    which refuses what is clearly not HU.
    """
    data = np.asarray(volume.data, dtype=np.float32)
    sample = data.ravel()[:: max(1, data.size // 2_000_000)]
    inside = sample[sample > PADDING_BELOW]
    share = lambda selected: float(np.mean(selected)) if inside.size else 0.0  # noqa: E731
    shifted = share(np.abs(inside - AIR_HU) < 100) < 0.01 and share(np.abs(inside) < 100) > 0.05 \
        and share((inside > 950) & (inside < 1150)) > 0.02
    rule = "air near -1000 HU, soft tissue near 40 HU"
    if shifted:
        data = data - STORED_OFFSET
    padded = data < PADDING_BELOW
    if padded.any():
        data = np.where(padded, np.float32(AIR_HU - 24.0), data)
    if not shifted:
        note = f"{100 * padded.mean():.1f}% of voxels are padding (below {PADDING_BELOW:g}), treated as air" if padded.any() else ""
        return (volume.with_data(data) if padded.any() else volume), Check("hu_scale", "HU", rule, "pass", note)
    return volume.with_data(data), Check(
        "hu_scale", f"HU + {STORED_OFFSET:g}", rule, "corrected",
        f"{volume.name}: the CT was stored without its rescale (air near 0, soft tissue near 1060); "
        f"shifted by -{STORED_OFFSET:g} to Hounsfield units" + (", padding set to air" if padded.any() else ""))


def check_gantry_tilt(volume: Volume) -> Check:
    """A tilted acquisition whose geometry came from its slice positions (a sheared grid): the
    translation follows it, and the output is written on it."""
    tilt = round(gantry_tilt_degrees(volume.affine), 2)
    if tilt > 0.1:
        return Check("gantry_tilt", tilt, "slices perpendicular to their plane", "corrected",
                     f"{volume.name}: gantry tilt of {tilt:g} degrees; the scan is used on its true (sheared) geometry")
    return Check("gantry_tilt", tilt, "slices perpendicular to their plane", "pass")


def check_slice_thickness(volume: Volume) -> Check:
    """Slices thicker than :data:`THICK_SLICE_MM` blur the through-plane detail the model relies on."""
    axis = slice_axis(volume.affine)
    spacing = float(volume.spacing[axis])
    if spacing > THICK_SLICE_MM:
        return Check("slice_thickness", round(spacing, 3), f"<= {THICK_SLICE_MM:g} mm", "warning",
                     f"{volume.name}: {spacing:.1f} mm slices: structures thinner than that are lost between slices, "
                     "and the synthetic T1 is as blurred through the plane as the CT")
    return Check("slice_thickness", round(spacing, 3), f"<= {THICK_SLICE_MM:g} mm", "pass")


def check_brain_volume(mask: np.ndarray, spacing: tuple[float, ...], name: str, automatic: bool = True) -> Check:
    """The brain's volume in mL against the adult range; an automatic mask far below it is refused
    (the CT is almost certainly not in Hounsfield units, or holds no brain)."""
    ml = float(np.count_nonzero(mask) * np.prod(spacing) / 1000.0)
    lo, hi = ADULT_BRAIN_ML
    rule = f"{lo:.0f}-{hi:.0f} mL"
    if automatic and ml < NOT_A_BRAIN_ML:
        raise Ct2mriError(
            f"{name}: the brain found is {ml:.0f} mL, far below an adult brain ({rule}); "
            "is the CT in Hounsfield units? (pass --mask to give the brain yourself)"
        )
    if ml < lo or ml > hi:
        return Check("brain_volume", round(ml, 1), rule, "warning",
                     f"{name}: the brain mask is {ml:.0f} mL, outside the adult range {rule} "
                     "(partial coverage, a child, or intensities not in HU?)")
    return Check("brain_volume", round(ml, 1), rule, "pass")


def check_coverage(mask: np.ndarray, affine: np.ndarray, name: str) -> Check:
    """Brain cut by the scan's first or last slice: its cross-section there, as a fraction of its
    largest cross-section (an uncut brain narrows to nothing at both ends)."""
    axis = slice_axis(affine)
    areas = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0).reshape(mask.shape[axis], -1).sum(axis=1)
    largest = max(1, int(areas.max()))
    edge = float(max(areas[0], areas[-1])) / largest
    ends = [label for label, area in zip(("bottom", "top"), (areas[0], areas[-1])) if area / largest > EDGE_AREA_FRACTION]
    # which end is the top depends on the slice axis' direction
    if ends and np.asarray(affine)[2, axis] < 0:
        ends = [{"bottom": "top", "top": "bottom"}[e] for e in ends]
    if ends:
        return Check("coverage", round(edge, 3), f"brain section at the scan's ends <= {EDGE_AREA_FRACTION:g} of its largest",
                     "warning", f"{name}: the brain is cut at the {' and '.join(ends)} of the scan "
                     f"({100 * edge:.0f}% of its largest cross-section lies in the last slice); the missing part is not translated")
    return Check("coverage", round(edge, 3), f"brain section at the scan's ends <= {EDGE_AREA_FRACTION:g} of its largest", "pass")


def check_components(mask: np.ndarray, name: str) -> Check:
    """More than one large connected part of the brain mask (a second head, a mask gone astray)."""
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))))
    sizes = np.bincount(labels.ravel())[1:]
    sizes = np.sort(sizes)[::-1]
    second = float(sizes[1] / sizes[0]) if sizes.size > 1 else 0.0
    rule = f"second part <= {SECOND_COMPONENT_FRACTION:g} of the largest"
    if second > SECOND_COMPONENT_FRACTION:
        return Check("mask_components", round(second, 3), rule, "warning",
                     f"{name}: the brain mask has {int(np.sum(sizes > SECOND_COMPONENT_FRACTION * sizes[0]))} large parts; "
                     "check it (or pass --mask)")
    return Check("mask_components", round(second, 3), rule, "pass")
