"""Scan checks: what about a CT could make its translation wrong, each named, measured and judged.

Every check has a value, the threshold it is judged by and a verdict: ``pass``; ``corrected``
(the scan was fixed, unambiguously, and says how); ``warning`` (the output is written, and the
warning goes to the user, the sidecar and the batch summary; ``--strict`` makes it a failure).
Checks that cannot be passed at all raise :class:`Ct2mriError` instead.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import Ct2mriError
from ..io.images import array_from_sitk, sitk_from_voxels
from ..io.volumes import Volume, gantry_tilt_degrees, slice_axis

THICK_SLICE_MM = 3.0
ADULT_BRAIN_ML = (900.0, 2100.0)  # parenchyma and ventricles of adults
NOT_A_BRAIN_ML = 300.0  # far below any brain: what was found is not one
EDGE_AREA_FRACTION = 0.15  # brain cross-section at the scan's first or last slice, of its largest
SECOND_COMPONENT_FRACTION = 0.05
OUTSIDE_SKULL_FRACTION = 0.02  # of a brain mask, outside the cavity the skull walls
AIR_HU, STORED_OFFSET, PADDING_BELOW = -1000.0, 1024.0, -1500.0
FILL_SHARE = 0.05


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


def _fill_value(values: np.ndarray) -> float | None:
    """A value written into a large part of the scan by the exporter (air or padding stored as 0,
    -1024, ...): one exact value held by at least 5 % of the voxels and by twenty times more voxels
    than any other value within 20 of it, where real tissue's noise spreads over neighbouring values."""
    levels, counts = np.unique(values, return_counts=True)
    top = int(np.argmax(counts))
    if counts[top] < FILL_SHARE * values.size:
        return None
    near = (np.abs(levels - levels[top]) <= 20) & (np.arange(levels.size) != top)
    if near.any() and counts[top] < 20 * counts[near].max():
        return None
    return float(levels[top])


def _border_connected(mask: np.ndarray, faces: tuple[int, ...]) -> np.ndarray:
    """The voxels of ``mask`` connected (3D, faces) to the volume's sides across ``faces`` axes."""
    import SimpleITK as sitk

    labels = array_from_sitk(sitk.ConnectedComponent(sitk_from_voxels(mask.astype(np.uint8))))
    touching: set[int] = set()
    for axis in faces:
        for end in (0, -1):
            touching.update(np.unique(np.take(labels, end, axis=axis)).tolist())
    touching.discard(0)
    return np.isin(labels, list(touching)) if touching else np.zeros(mask.shape, dtype=bool)


def _header_intercept(volume: Volume) -> float | None:
    """The rescale intercept the reader already applied (DICOM RescaleIntercept, NIfTI scl_inter)."""
    if "0028|1052" in volume.dicom:
        try:
            return float(volume.dicom["0028|1052"])
        except ValueError:
            return None
    if volume.header is not None:
        slope, inter = volume.header.get_slope_inter()
        if slope is not None and inter is not None and np.isfinite(inter):
            return float(inter)
    return None


SHIFT_EVIDENCE = (
    "the -100..150 band lies outside the head, as air does",
    "no values in -1450..-200",
    "a soft-tissue peak in 924..1174",
    "little between air and soft tissue",
)


@dataclass
class HuEvidence:
    """What a CT's values say about their scale (shares are of the voxels that are neither padding
    nor the fill value)."""

    fill: float | None
    low_band_outside: float  # share of the -100..150 band connected to the scan's in-plane sides
    negative: float  # share in -1450..-200: air and fat in HU, absent from HU + 1024
    tissue_shifted: float  # share in 924..1174: soft tissue stored as HU + 1024, or bone in HU
    gap_shifted: float  # share in 300..850: -724..-174 HU once shifted, nearly empty in a CT
    gap_hu: float  # share in 150..300 against the -100..150 band: nearly empty in a CT in HU
    header_intercept: float | None

    def votes_for_shift(self) -> list[str]:
        """The items of :data:`SHIFT_EVIDENCE` that this scan shows."""
        shown = (
            self.low_band_outside > 0.5,
            self.negative < 0.001,
            self.tissue_shifted > 0.02,
            self.gap_shifted < 0.25 * self.tissue_shifted,
        )
        return [name for name, vote in zip(SHIFT_EVIDENCE, shown) if vote]


def hu_evidence(volume: Volume) -> HuEvidence:
    """Measure the evidence of :func:`check_hu_scale` (on up to about two million voxels)."""
    data = np.asarray(volume.data, dtype=np.float32)
    step = max(1, round((data.size / 2_000_000) ** (1 / 3)))
    sample = data[::step, ::step, ::step] if data.ndim == 3 else data.ravel()
    fill = _fill_value(sample[sample > PADDING_BELOW])
    valid = (sample > PADDING_BELOW) & (sample != (np.nan if fill is None else fill))
    count = max(1, int(valid.sum()))
    share = lambda selected: float(np.count_nonzero(selected & valid)) / count
    low = valid & (sample > -100) & (sample < 150)
    outside = 0.0
    if low.any() and sample.ndim == 3:
        in_plane = tuple(a for a in range(3) if a != slice_axis(volume.affine))
        outside = float(_border_connected(low, in_plane).sum()) / float(low.sum())
    return HuEvidence(
        fill=fill,
        low_band_outside=round(outside, 4),
        negative=round(share(sample < -200), 5),
        tissue_shifted=round(share((sample > 924) & (sample < 1174)), 4),
        gap_shifted=round(share((sample > 300) & (sample < 850)), 4),
        gap_hu=round(share((sample > 150) & (sample < 300)) / max(share(low), 1e-9), 4),
        header_intercept=_header_intercept(volume),
    )


def check_hu_scale(volume: Volume) -> tuple[Volume, Check]:
    """Intensities stored without their rescale to Hounsfield units, and air or padding stored as
    a fill value.

    A CT is shifted by -1024 only when four kinds of evidence agree (:class:`HuEvidence`): the
    -100..150 band is the air around the head (in HU it is tissue inside it), nothing lies in
    -1450..-200 (air and fat in HU), soft tissue peaks at 924..1174, and little lies between air
    and soft tissue; a header whose rescale intercept was already applied vetoes the shift.  When
    three of the four say shifted, the scan is refused rather than guessed at.  Padding
    below -1500 (outside the field of view) and air stored as 0 become air.
    """
    evidence = hu_evidence(volume)
    votes = evidence.votes_for_shift()
    rule = "HU: tissue inside the head at -100..150; shifted only when all evidence agrees"
    data = np.asarray(volume.data, dtype=np.float32)
    if len(votes) == 3:
        missing = [v for v in SHIFT_EVIDENCE if v not in votes]
        raise Ct2mriError(
            f"{volume.name}: cannot tell the CT's intensity scale: it looks stored as HU + 1024 "
            f"({'; '.join(votes)}) but not in every way ({'; '.join(missing)}); "
            "convert it to Hounsfield units first (apply the rescale intercept)"
        )
    shifted = len(votes) == 4
    if shifted and evidence.header_intercept is not None and evidence.header_intercept <= -500:
        raise Ct2mriError(
            f"{volume.name}: the CT looks stored as HU + 1024, but its header's rescale intercept "
            f"({evidence.header_intercept:g}) was already applied; check the export"
        )
    notes = []
    if shifted:
        data = data - STORED_OFFSET
        notes.append(
            f"{volume.name}: the CT was stored without its rescale (air near 0, soft tissue near 1060); "
            f"shifted by -{STORED_OFFSET:g} to Hounsfield units"
        )
    padded = data < PADDING_BELOW
    if padded.any():
        data = np.where(padded, np.float32(AIR_HU - 24.0), data)
        notes.append(f"{100 * padded.mean():.1f}% of voxels are padding (below {PADDING_BELOW:g}), treated as air")
    tissue_inside = evidence.low_band_outside < 0.5 and evidence.gap_hu < 0.2
    if not shifted and evidence.fill is not None and -200.0 < evidence.fill < 200.0 and tissue_inside:
        # air written as a value in the tissue range: the fill around the head becomes air
        filled = _border_connected(data == evidence.fill, (0, 1, 2))
        data = np.where(filled, np.float32(AIR_HU - 24.0), data)
        notes.append(
            f"{100 * filled.mean():.1f}% of voxels hold the fill value {evidence.fill:g} around the head, "
            "treated as air"
        )
    out = volume.with_data(data) if notes else volume  # every change leaves a note
    if shifted:
        return out, Check("hu_scale", f"HU + {STORED_OFFSET:g}", rule, "corrected", "; ".join(notes))
    return out, Check("hu_scale", "HU", rule, "pass", "; ".join(notes))


def check_gantry_tilt(volume: Volume) -> Check:
    """A tilted acquisition whose geometry came from its slice positions (a sheared grid): the
    translation follows it, and the output is written on it."""
    tilt = round(gantry_tilt_degrees(volume.affine), 2)
    if tilt > 0.1:
        return Check(
            "gantry_tilt",
            tilt,
            "slices perpendicular to their plane",
            "corrected",
            f"{volume.name}: gantry tilt of {tilt:g} degrees; the scan is used on its true (sheared) geometry",
        )
    return Check("gantry_tilt", tilt, "slices perpendicular to their plane", "pass")


def check_slice_thickness(volume: Volume) -> Check:
    """Slices thicker than :data:`THICK_SLICE_MM` blur the through-plane detail the model relies on."""
    axis = slice_axis(volume.affine)
    spacing = float(volume.spacing[axis])
    if spacing > THICK_SLICE_MM:
        return Check(
            "slice_thickness",
            round(spacing, 3),
            f"<= {THICK_SLICE_MM:g} mm",
            "warning",
            f"{volume.name}: {spacing:.1f} mm slices: structures thinner than that are lost between slices, "
            "and the synthetic T1 is as blurred through the plane as the CT",
        )
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
        return Check(
            "brain_volume",
            round(ml, 1),
            rule,
            "warning",
            f"{name}: the brain mask is {ml:.0f} mL, outside the adult range {rule} "
            "(partial coverage, a child, or intensities not in HU?)",
        )
    return Check("brain_volume", round(ml, 1), rule, "pass")


def check_coverage(mask: np.ndarray, affine: np.ndarray, name: str) -> Check:
    """Brain cut by the scan's first or last slice: its cross-section there, as a fraction of its
    largest cross-section (an uncut brain narrows to nothing at both ends)."""
    axis = slice_axis(affine)
    areas = np.moveaxis(np.asarray(mask, dtype=bool), axis, 0).reshape(mask.shape[axis], -1).sum(axis=1)
    largest = max(1, int(areas.max()))
    edge = float(max(areas[0], areas[-1])) / largest
    ends = [
        label for label, area in zip(("bottom", "top"), (areas[0], areas[-1])) if area / largest > EDGE_AREA_FRACTION
    ]
    # which end is the top depends on the slice axis' direction
    if ends and np.asarray(affine)[2, axis] < 0:
        ends = [{"bottom": "top", "top": "bottom"}[e] for e in ends]
    if ends:
        return Check(
            "coverage",
            round(edge, 3),
            f"brain section at the scan's ends <= {EDGE_AREA_FRACTION:g} of its largest",
            "warning",
            f"{name}: the brain is cut at the {' and '.join(ends)} of the scan "
            f"({100 * edge:.0f}% of its largest cross-section lies in the last slice); the missing part is not translated",
        )
    return Check(
        "coverage", round(edge, 3), f"brain section at the scan's ends <= {EDGE_AREA_FRACTION:g} of its largest", "pass"
    )


def check_components(mask: np.ndarray, name: str) -> Check:
    """More than one large connected part of the brain mask (a second head, a mask gone astray)."""
    import SimpleITK as sitk

    labels = array_from_sitk(sitk.ConnectedComponent(sitk_from_voxels(np.asarray(mask, dtype=np.uint8))))
    sizes = np.bincount(labels.ravel())[1:]
    sizes = np.sort(sizes)[::-1]
    second = float(sizes[1] / sizes[0]) if sizes.size > 1 else 0.0
    rule = f"second part <= {SECOND_COMPONENT_FRACTION:g} of the largest"
    if second > SECOND_COMPONENT_FRACTION:
        return Check(
            "mask_components",
            round(second, 3),
            rule,
            "warning",
            f"{name}: the brain mask has {int(np.sum(sizes > SECOND_COMPONENT_FRACTION * sizes[0]))} large parts; "
            "check it (or pass --mask)",
        )
    return Check("mask_components", round(second, 3), rule, "pass")


def check_mask_in_skull(mask: np.ndarray, hu: np.ndarray, spacing: tuple[float, ...], name: str) -> Check:
    """A brain mask reaching out of the cranial cavity (through the skull base into the face or
    the neck): the share of its voxels that bone does not wall on five of six sides."""
    from .brainmask import BrainMaskParams, enclosed_by_bone

    params = BrainMaskParams()
    # a share, not a mask: voxels finer than 1.5 mm are pooled in twos (a wall anywhere in a block
    # walls the block, so a thin skull is not lost)
    steps = [2 if s < 1.5 else 1 for s in spacing]
    full = np.asarray(hu) > params.wall_hu
    shape = tuple(n // k for n, k in zip(full.shape, steps))
    walls = np.zeros(shape, dtype=bool)
    for offset in itertools.product(*[range(k) for k in steps]):
        walls |= full[tuple(slice(o, o + n * k, k) for o, n, k in zip(offset, shape, steps))]
    mask = np.asarray(mask, dtype=bool)[tuple(slice(0, n * k, k) for n, k in zip(shape, steps))]
    coarse = tuple(float(s) * k for s, k in zip(spacing, steps))
    enclosed = enclosed_by_bone(walls, coarse, params.reach_mm)  # type: ignore[arg-type]
    outside = float(np.count_nonzero(mask & ~enclosed)) / max(1, int(np.count_nonzero(mask)))
    rule = f"<= {OUTSIDE_SKULL_FRACTION:g} of the mask outside the skull's cavity"
    if outside > OUTSIDE_SKULL_FRACTION:
        return Check(
            "mask_in_skull",
            round(outside, 4),
            rule,
            "warning",
            f"{name}: {100 * outside:.0f}% of the brain mask lies outside the cavity the skull walls "
            "(face, neck or scalp); check it (or pass --mask)",
        )
    return Check("mask_in_skull", round(outside, 4), rule, "pass")
