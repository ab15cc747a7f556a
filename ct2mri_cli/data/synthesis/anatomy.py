"""Source anatomies: the template brains (:mod:`ct2mri_cli.data.templates`) prepared for synthesis.

An :class:`Anatomy` holds per-voxel tissue fractions, the T1 normalised to white matter = 1,
the intracranial mask and a field pointing towards the lateral ventricles, on the source's own
grid.  Colin27 is classified from its own head; the MNI brain, which has no head, gets its GM/WM
maps inside Colin27's head.  Building one takes seconds, so :func:`prepare_anatomy` (and the
Colin27 parts that both sources use) are cached per process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import SimpleITK as sitk

from ...io.images import Interpolation, affine_from_sitk, array_from_sitk, sitk_from_array, smoothed_to_spacing
from ...preprocessing.registration import affine_from_rigid, centred_by_moments, run_registration
from ..sources import get_source, load_source, source_notice
from ..templates import Template, load_template, mni_license_text
from .imaging import (
    _distance_mm,
    _fill_holes,
    _largest_component,
    _morph,
    _resample_onto,
    _spacing,
    gaussian_blur,
)
from .tissue import (
    BRAIN_CLASSES,
    CLASSES,
    _grow_into,
    _head_classes,
    fit_gmm_1d,
    partial_volume_memberships,
    sharpen_gm_wm,
)

MNI_SPACE_ICV_ML = 1950.0  # intracranial volume of the MNI-space sources (FSL 1930, ICBM 2009c 2008 ml)


@dataclass
class Anatomy:
    """A source brain prepared for synthesis, on its own grid.

    Inside the intracranial mask ``icv`` (brain, ventricles, subarachnoid CSF) the tissue is a
    partial-volume mixture given by ``brain_fractions`` (3, X, Y, Z) uint8: CSF, GM, WM in
    1/255 steps summing to 255; outside it every voxel has one extracerebral class, ``labels``
    (index into CLASSES).  ``t1`` is float32 with white matter = 1; ``ventricle_pull`` is a
    unit-free vector field (3, ...) on ``coarse_affine`` pointing towards the lateral
    ventricles; ``licence`` is the notice that must travel with derived data; ``size_factor``
    scales a head of real size to the size of MNI space, which the subjects' scale ranges assume
    (1 for sources in MNI space); ``derived`` keeps maps computed from the anatomy once for all
    its subjects.
    """

    name: str
    affine: np.ndarray
    labels: np.ndarray
    brain_fractions: np.ndarray
    t1: np.ndarray
    icv: np.ndarray
    centre_mm: np.ndarray
    ventricle_pull: np.ndarray
    coarse_affine: np.ndarray
    t1_levels: dict[str, float] = field(default_factory=dict)
    licence: str | None = None
    size_factor: float = 1.0
    derived: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.t1.shape)  # type: ignore[return-value]

    def fractions(self) -> np.ndarray:
        """All class fractions (len(CLASSES), X, Y, Z) as float32 in [0, 1]."""
        out = np.zeros((len(CLASSES),) + self.shape, dtype=np.float32)
        out[:3] = self.brain_fractions / np.float32(255.0)
        for k in range(3, len(CLASSES)):
            out[k] = (self.labels == k) & ~self.icv
        return out

    def hu_ideal(self, hu: dict[str, float]) -> np.ndarray:
        """Noise-free HU of the unblurred anatomy for per-class values ``hu``."""
        lut = np.array([0.0, 0.0, 0.0] + [hu[name] for name in CLASSES[3:]], dtype=np.float32)
        out = lut[self.labels]
        for i, name in enumerate(BRAIN_CLASSES):
            out += self.brain_fractions[i] * np.float32(hu[name] / 255.0)
        return out


def _quantise_brain(brain_fr: np.ndarray, icv: np.ndarray) -> np.ndarray:
    """CSF/GM/WM fractions to uint8 summing exactly to 255 inside ``icv`` (0 outside)."""
    wm = np.rint(np.clip(brain_fr[2], 0, 1) * 255.0).astype(np.int16)
    gm = np.minimum(np.rint(np.clip(brain_fr[1], 0, 1) * 255.0).astype(np.int16), 255 - wm)
    csf = 255 - wm - gm
    out = np.stack([csf, gm, wm]).astype(np.uint8)
    out *= icv[None]
    return out


def _ventricle_pull(csf: np.ndarray, icv: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vector field (3, ...) on a 2 mm grid pointing up the smoothed lateral-ventricle mask."""
    deep = _morph(icv, affine, "erode", 14.0)
    ventricles = (csf > 0.5) & deep
    min_voxels = int(math.ceil(1000.0 / float(np.prod(_spacing(affine)))))  # 1 ml: drop deep sulci
    labels = sitk.RelabelComponent(
        sitk.ConnectedComponent(sitk_from_array(ventricles.astype(np.uint8), affine)), min_voxels
    )
    ventricles = array_from_sitk(labels) > 0
    step = max(1, int(round(2.0 / float(_spacing(affine).min()))))
    coarse = ventricles[::step, ::step, ::step].astype(np.float32)
    coarse_affine = affine.copy()
    coarse_affine[:3, :3] = affine[:3, :3] * step
    smooth = gaussian_blur(coarse, coarse_affine, (10.0, 10.0, 10.0))
    grads = np.stack(np.gradient(smooth, *[float(s) for s in _spacing(coarse_affine)]))
    norm = float(np.sqrt((grads**2).sum(axis=0)).max())
    return (grads / norm if norm > 0 else grads).astype(np.float32), coarse_affine


def _brain_levels(t1: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    means, _, _ = fit_gmm_1d(t1[mask], 3)
    return means, float(means[2])


def _itk_pull(transform: sitk.AffineTransform) -> np.ndarray:
    """A SimpleITK affine-type transform (LPS) as a 4x4 RAS pull-back matrix."""
    matrix = np.array(transform.GetMatrix()).reshape(3, 3)
    centre = np.array(transform.GetCenter())
    shift = centre + np.array(transform.GetTranslation()) - matrix @ centre
    flip = np.diag([-1.0, -1.0, 1.0])
    pull = np.eye(4)
    pull[:3, :3] = flip @ matrix @ flip
    pull[:3, 3] = flip @ shift
    return pull


def _register_to_template(t1: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pull-back matrices (4x4, RAS mm) from the bundled MNI head template onto a head: rigid,
    then affine (Mattes mutual information at 2 mm, the affine starting from the rigid; one
    thread, so that a source's anatomy, and every pair made from it, is the same everywhere)."""
    from ...style.brain import REGISTRATION_MM, REGISTRATION_SMOOTHING_MM, TEMPLATE_REGISTRATION, template_paths

    fixed = sitk.ReadImage(str(template_paths()[0]), sitk.sitkFloat32)
    moving = smoothed_to_spacing(sitk_from_array(t1, affine), REGISTRATION_MM, REGISTRATION_SMOOTHING_MM)
    rigid = centred_by_moments(fixed, moving, sitk.Euler3DTransform())
    run_registration(fixed, moving, rigid, TEMPLATE_REGISTRATION, in_place=True)
    full = affine_from_rigid(rigid)
    run_registration(fixed, moving, full, replace(TEMPLATE_REGISTRATION, learning_rate=0.5), in_place=True)
    return _itk_pull(rigid), _itk_pull(full)


def _into_mni_frame(
    t1: np.ndarray, affine: np.ndarray, brain: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head resampled (linear, 1 mm) onto an axis-aligned grid in MNI orientation, so that
    every source shares the template's frame (the subject sampler turns heads about it).

    A head without a brain mask gets the template's brain, carried over by the affine
    registration and refined on the T1 (:func:`_refine_brain`)."""
    from ...style.brain import template_paths

    rigid, full = _register_to_template(t1, affine)
    head = np.argwhere(gaussian_blur(t1, affine, (2.0, 2.0, 2.0)) > 0.1 * float(np.percentile(t1, 99.5)))
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)
    lo, hi = head.min(axis=0) - 2, head.max(axis=0) + 2
    world = (corners * (hi - lo) + lo) @ affine[:3, :3].T + affine[:3, 3]
    inside = (world - rigid[:3, 3]) @ np.linalg.inv(rigid[:3, :3]).T
    start = np.floor(inside.min(axis=0))
    shape = tuple(int(n) for n in np.ceil(inside.max(axis=0) - start) + 1)
    new_affine = np.eye(4)
    new_affine[:3, 3] = start
    t1_new = _resample_onto(t1, affine, shape, new_affine, rigid, "linear", 0.0).astype(np.float32)
    if brain is not None:
        brain_new = _resample_onto(brain.astype(np.uint8), affine, shape, new_affine, rigid, "nearest", 0) > 0
        return t1_new, new_affine, brain_new
    mask_image = sitk.ReadImage(str(template_paths()[1]), sitk.sitkFloat32)
    mask = array_from_sitk(mask_image)
    mask_affine = affine_from_sitk(mask_image)
    template_brain = (
        _resample_onto(mask, mask_affine, shape, new_affine, np.linalg.inv(full) @ rigid, "linear", 0.0) > 0.5
    )
    return t1_new, new_affine, _refine_brain(t1_new, new_affine, template_brain)


def _refine_brain(t1: np.ndarray, affine: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """A registered template brain made to follow this head's own cortex.

    The core (the registered brain eroded by 8 mm) is surely brain; from there the brain grows
    through tissue brighter than the CSF/GM midpoint, up to 12 mm and never more than 2 mm past
    the registered brain.  The dark CSF and skull stop the growth before the bright scalp; an
    opening by 1.5 mm first cuts the thin bright bridges (vessels, partial volume) across them.
    """
    core = _distance_mm(~registered, affine) > 8.0
    means, _ = _brain_levels(t1, core)
    threshold = 0.5 * (float(means[0]) + float(means[1]))
    allowed = (_distance_mm(registered, affine) <= 2.0) & (gaussian_blur(t1, affine, (1.0, 1.0, 1.0)) > threshold)
    allowed = _morph(allowed, affine, "open", 1.5)
    brain = _grow_into(core & allowed, allowed, 12)
    brain = _largest_component(brain, affine)
    return _fill_holes(_morph(brain, affine, "close", 2.0), affine)


@functools.cache
def _head_parts(name: str) -> dict[str, Any]:
    """A whole-head source prepared once per process: brain fractions, head labels, normalised T1.

    The intracranial volume is the brain mask closed by 3 mm and grown up to 4 mm into CSF-like
    voxels (brain masks stop at the cortex; the CSF reaches the inner table).  A 3-class
    Gaussian mixture inside it gives the CSF, GM and WM levels, and partial-volume mixing of
    those levels gives every voxel's fractions.  Outside, :func:`_head_classes` labels skull,
    fat, soft tissue and air from the T1.
    """
    source = get_source(name)
    tpl: Template = load_source(name)
    t1, affine, brain = tpl.t1, tpl.affine, tpl.brain
    if not source.mni_space or brain is None:
        t1, affine, brain = _into_mni_frame(t1, affine, brain)
    brain = _fill_holes(_largest_component(brain, affine), affine)
    icv = _fill_holes(_morph(brain, affine, "close", 3.0), affine)
    means, wm_level = _brain_levels(t1, icv)
    t1n = (t1 / wm_level).astype(np.float32)
    csf_like = (t1n > 0.3) & (t1n < 0.7)
    icv = _fill_holes(_grow_into(icv, csf_like, 4), affine)
    means, wm_level = _brain_levels(t1, icv)
    t1n = (t1 / wm_level).astype(np.float32)
    brain_fr = partial_volume_memberships(t1n, tuple(means / wm_level)) * icv
    labels, _ = _head_classes(t1n, icv, affine)
    return {
        "affine": affine,
        "icv": icv,
        "t1n": t1n,
        "brain_fractions": brain_fr,
        "labels": labels,
        "levels": {name: float(m / wm_level) for name, m in zip(BRAIN_CLASSES, means)},
    }


def make_anatomy(
    name: str,
    affine: np.ndarray,
    brain_fr: np.ndarray,
    labels: np.ndarray,
    icv: np.ndarray,
    t1n: np.ndarray,
    levels: dict[str, float],
    licence: str | None,
) -> Anatomy:
    """Build an :class:`Anatomy` from float CSF/GM/WM fractions (3, ...) inside ``icv`` and hard
    extracerebral ``labels`` outside it (also the ventricle pull field and the brain centre)."""
    labels = np.where(icv, np.uint8(0), labels).astype(np.uint8)
    pull, coarse_affine = _ventricle_pull(brain_fr[0] * icv, icv, affine)
    idx = np.argwhere(icv[::2, ::2, ::2]) * 2.0
    centre = affine[:3, :3] @ idx.mean(axis=0) + affine[:3, 3]
    return Anatomy(
        name=name,
        affine=affine,
        labels=labels,
        brain_fractions=_quantise_brain(brain_fr, icv),
        t1=t1n,
        icv=icv,
        centre_mm=centre,
        ventricle_pull=pull,
        coarse_affine=coarse_affine,
        t1_levels=levels,
        licence=licence,
    )


def _prepare_head(name: str) -> Anatomy:
    parts = _head_parts(name)
    anatomy = make_anatomy(
        name,
        parts["affine"],
        parts["brain_fractions"],
        parts["labels"],
        parts["icv"],
        parts["t1n"],
        parts["levels"],
        source_notice(name),
    )
    if not get_source(name).mni_space:
        icv_ml = float(anatomy.icv.sum()) * abs(float(np.linalg.det(anatomy.affine[:3, :3]))) / 1000.0
        anatomy.size_factor = (MNI_SPACE_ICV_ML / icv_ml) ** (1.0 / 3.0)
    return anatomy


def _moment_fit(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
) -> np.ndarray:
    """Pull-back affine (4x4, RAS mm) mapping ``fixed`` world points onto ``moving`` ones.

    Matches the centroids and per-axis spreads of two masks already in the same orientation
    (both templates live in MNI space, so no rotation is needed).
    """

    def moments(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = np.argwhere(mask)[::7].astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]
        return pts.mean(axis=0), pts.std(axis=0)

    c_m, s_m = moments(moving, moving_affine)
    c_f, s_f = moments(fixed, fixed_affine)
    scale = s_m / s_f
    out = np.eye(4)
    out[:3, :3] = np.diag(scale)
    out[:3, 3] = c_m - scale * c_f
    return out


def _prepare_mni() -> Anatomy:
    """The MNI brain (with its GM/WM maps) inside Colin27's head.

    Colin27's head is scaled onto the MNI brain by matching the centroids and spreads of the two
    intracranial masks.  Where Colin27's skull cavity reaches beyond the MNI brain mask the
    space is CSF (the MNI mask stops at the cortex); where the MNI brain reaches into Colin27's
    skull the skull gives way, keeping a 1.5 mm inner table.
    """
    tpl = load_template("mni")
    affine = tpl.affine
    brain = _fill_holes(_largest_component(tpl.t1 > 0, affine), affine)
    icv = _fill_holes(_morph(brain, affine, "close", 3.0), affine)

    colin = _head_parts("colin27")
    pull = _moment_fit(colin["icv"], colin["affine"], icv, affine)

    def onto_mni(array: np.ndarray, interpolation: Interpolation, default: float) -> np.ndarray:
        return _resample_onto(array, colin["affine"], icv.shape, affine, pull, interpolation, default)

    labels = onto_mni(colin["labels"], "nearest", CLASSES.index("air"))
    colin_icv = onto_mni(colin["icv"].astype(np.uint8), "nearest", 0)
    colin_t1 = onto_mni(colin["t1n"], "linear", 0.0)
    icv = _fill_holes(icv | (colin_icv > 0), affine)
    inner_table = _morph(icv, affine, "dilate", 1.5) & ~icv & (labels != CLASSES.index("air"))
    labels[inner_table] = CLASSES.index("cortical")
    bone_level = float(np.median(colin["t1n"][colin["labels"] == CLASSES.index("cortical")]))
    colin_t1[inner_table] = np.minimum(colin_t1[inner_table], bone_level)

    gm, wm = sharpen_gm_wm(np.asarray(tpl.gm) * brain, np.asarray(tpl.wm) * brain)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * icv
    brain_fr = np.stack([csf, gm, wm]).astype(np.float32)
    wm_level = float(np.median(tpl.t1[np.asarray(tpl.wm) > 0.9]))
    t1n = (tpl.t1 / wm_level).astype(np.float32)
    csf_level = float(np.median(t1n[(csf > 0.95) & brain]))
    head_t1 = np.where(icv, np.where(brain, t1n, csf_level), colin_t1).astype(np.float32)
    levels = {"csf": csf_level, "gm": float(np.median(t1n[np.asarray(tpl.gm) > 0.9])), "wm": 1.0}
    return make_anatomy("mni", affine, brain_fr, labels, icv, head_t1, levels, mni_license_text())


@functools.cache
def prepare_anatomy(source: str) -> Anatomy:
    """The prepared anatomy of a registry source (cached per process).  The MNI 2009a brain,
    which has no head, is placed in Colin27's; every other source is a whole head."""
    get_source(source)
    return _prepare_mni() if source == "mni" else _prepare_head(source)
