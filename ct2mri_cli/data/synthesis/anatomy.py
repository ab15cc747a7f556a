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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from ...errors import Ct2mriError
from ...io.volumes import array_from_sitk
from ..templates import SOURCES, Template, load_template, mni_license_text
from .imaging import (
    _fill_holes,
    _image,
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


@dataclass
class Anatomy:
    """A source brain prepared for synthesis, on its own grid.

    Inside the intracranial mask ``icv`` (brain, ventricles, subarachnoid CSF) the tissue is a
    partial-volume mixture given by ``brain_fractions`` (3, X, Y, Z) uint8: CSF, GM, WM in
    1/255 steps summing to 255; outside it every voxel has one extracerebral class, ``labels``
    (index into CLASSES).  ``t1`` is float32 with white matter = 1; ``ventricle_pull`` is a
    unit-free vector field (3, ...) on ``coarse_affine`` pointing towards the lateral
    ventricles; ``licence`` is the notice that must travel with derived data.
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
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(_image(ventricles.astype(np.uint8), affine)), min_voxels)
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


@functools.lru_cache(maxsize=1)
def _colin_parts() -> dict[str, Any]:
    """Colin27 prepared once per process: brain fractions, head labels and normalised T1."""
    tpl: Template = load_template("colin27")
    affine = tpl.affine
    brain = _fill_holes(_largest_component(tpl.brain, affine), affine)  # type: ignore[arg-type]
    icv = _fill_holes(_morph(brain, affine, "close", 3.0), affine)
    means, wm_level = _brain_levels(tpl.t1, icv)
    t1n = (tpl.t1 / wm_level).astype(np.float32)
    # the brain mask stops at the cortex; CSF-like voxels out to the inner table belong inside
    csf_like = (t1n > 0.3) & (t1n < 0.7)
    icv = _fill_holes(_grow_into(icv, csf_like, 4), affine)
    means, wm_level = _brain_levels(tpl.t1, icv)
    t1n = (tpl.t1 / wm_level).astype(np.float32)
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


def _prepare_colin27() -> Anatomy:
    parts = _colin_parts()
    return make_anatomy(
        "colin27",
        parts["affine"],
        parts["brain_fractions"],
        parts["labels"],
        parts["icv"],
        parts["t1n"],
        parts["levels"],
        None,
    )


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

    colin = _colin_parts()
    pull = _moment_fit(colin["icv"], colin["affine"], icv, affine)
    def onto_mni(array: np.ndarray, interpolator: int, default: float) -> np.ndarray:
        return _resample_onto(array, colin["affine"], icv.shape, affine, pull, interpolator, default)

    labels = onto_mni(colin["labels"], sitk.sitkNearestNeighbor, CLASSES.index("air"))
    colin_icv = onto_mni(colin["icv"].astype(np.uint8), sitk.sitkNearestNeighbor, 0)
    colin_t1 = onto_mni(colin["t1n"], sitk.sitkLinear, 0.0)
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


@functools.lru_cache(maxsize=2)
def prepare_anatomy(source: str) -> Anatomy:
    """The prepared anatomy of source ``"mni"`` or ``"colin27"`` (cached per process)."""
    if source == "colin27":
        return _prepare_colin27()
    if source == "mni":
        return _prepare_mni()
    raise Ct2mriError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")
