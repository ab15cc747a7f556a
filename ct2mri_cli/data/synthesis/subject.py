"""Synthetic subjects: the parameters that vary between people and scans, and how they are drawn.

One :class:`SubjectParams` fixes a subject's geometry, CT physics and MRI appearance; it is what
the manifest records for every case.  :mod:`.deformation` and :mod:`.physics` consume it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class SubjectParams:
    """Everything drawn for one synthetic subject (recorded in the manifest).

    Geometry: ``rotation_deg`` about x, y, z; ``scale`` per axis; ``shift_mm``; ``warp_rms_mm``
    (RMS of the smooth random displacement, correlation ``warp_fwhm_mm``); ``ventricle_mm`` (how
    far tissue is pulled towards the lateral ventricles; 0 = unchanged).  CT: ``hu`` per class,
    ``ct_inhomogeneity_hu`` (SD of a smooth additive field), ``bone_density_sd`` and
    ``bone_texture_sd`` (relative SD of smooth and fine variations of bone density),
    ``ct_blur_fwhm_mm`` and ``ct_noise_fwhm_mm`` (in-plane, through-plane), ``ct_noise_sd``.
    MRI: ``mri_gamma`` and
    ``mri_saturation`` (contrast curve), ``mri_bias_sd`` (log bias field SD), ``mri_noise``
    (noise SD relative to white matter) and ``mri_scale`` (white-matter intensity of the file).

    Wide variety only (zero or None in the calibrated set): ``atrophy`` (share of the grey matter
    bordering CSF turned into CSF, which widens sulci), ``asymmetry`` (relative difference in
    width between the hemispheres), ``slice_thickness_mm`` (the CT's through-plane blur),
    ``kernel_sharpness`` (0 smooth to 1 sharp: edge enhancement and finer noise grain),
    ``cupping_hu`` (beam-hardening rise of the brain's HU near the inner table),
    ``calcifications`` (HU of calcified choroid plexus and pineal gland; 0 when not calcified)
    and ``coverage_cut_mm`` (field of view missing at the bottom and top of the scan).

    Fine warp (``synthesize --fine-warp``; zero otherwise): ``fine_warp_rms_mm`` and
    ``fine_warp_fwhm_mm``, a second random displacement on the scale of gyri, which moves the
    sulci and ventricle walls of the source brain against its overall shape.
    """

    source: str
    rotation_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    shift_mm: tuple[float, float, float]
    warp_rms_mm: float
    warp_fwhm_mm: float
    ventricle_mm: float
    hu: dict[str, float]
    ct_inhomogeneity_hu: float
    bone_density_sd: float
    bone_texture_sd: float
    ct_blur_fwhm_mm: tuple[float, float]
    ct_noise_fwhm_mm: tuple[float, float]
    ct_noise_sd: float
    mri_gamma: float
    mri_saturation: float
    mri_bias_sd: float
    mri_noise: float
    mri_scale: float
    variety: str = "calibrated"
    atrophy: float = 0.0
    asymmetry: float = 0.0
    slice_thickness_mm: float | None = None
    kernel_sharpness: float = 0.0
    cupping_hu: float = 0.0
    calcifications: dict[str, float] = field(default_factory=dict)
    coverage_cut_mm: tuple[float, float] = (0.0, 0.0)
    fine_warp_rms_mm: float = 0.0
    fine_warp_fwhm_mm: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, rounded to what matters."""

        def clean(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (tuple, list)):
                return [clean(v) for v in value]
            if isinstance(value, float):
                return round(value, 4)
            return value

        return clean(asdict(self))


VARIETIES = ("calibrated", "wide")
FINE_WARP_FWHM_MM = (12.0, 16.0)  # gyri and sulci, resolved by the deformation's 4 mm control grid
MAX_FINE_WARP_MM = 1.2  # at 1.5 mm RMS and 12-14 mm FWHM the warp folds tissue onto itself in places


def with_fine_warp(params: SubjectParams, rng: np.random.Generator, rms_mm: float) -> SubjectParams:
    """``params`` with a fine warp of RMS drawn in [rms_mm / 2, rms_mm] and a correlation FWHM in
    :data:`FINE_WARP_FWHM_MM`, drawn from ``rng`` (a stream of its own, so the subject's other
    draws do not change)."""
    return replace(
        params, fine_warp_rms_mm=rng.uniform(0.5 * rms_mm, rms_mm), fine_warp_fwhm_mm=rng.uniform(*FINE_WARP_FWHM_MM)
    )


def sample_subject(
    rng: np.random.Generator, source: str, ventricle_probability: float = 0.5, variety: str = "calibrated"
) -> SubjectParams:
    """Draw one subject's geometry, CT physics and MRI appearance from ``rng``.

    ``calibrated``: every range centred on the real head CT of Debian's invesalius-examples.
    ``wide``: the same draws, then anatomy and scanners varied over the adult and clinical range
    (:func:`widen`).  See docs/SYNTHETIC_DATA.md.
    """
    if variety not in VARIETIES:
        raise ValueError(f"variety must be one of {', '.join(VARIETIES)}, got {variety!r}")
    params = _sample_calibrated(rng, source, ventricle_probability)
    return widen(params, rng) if variety == "wide" else params


def widen(params: SubjectParams, rng: np.random.Generator) -> SubjectParams:
    """Redraw a calibrated subject over the wide ranges: anatomy (large deformations, atrophy,
    ventricles from small to large, asymmetry, head size and shape, pose up to 20 degrees) and
    CT appearance (slice thickness, kernel, noise level and grain, grey/white contrast,
    cupping, calcifications, partial coverage)."""
    u = rng.uniform
    hu = dict(params.hu)
    hu["gm"] = hu["wm"] + u(4.0, 13.0)
    thickness = float(np.exp(u(np.log(0.6), np.log(5.0))))
    sharp = u(0.0, 1.0)
    global_scale = u(0.82, 1.0)
    cut = (u(0.0, 30.0), u(0.0, 30.0)) if u() < 0.3 else (0.0, 0.0)
    return replace(
        params,
        variety="wide",
        rotation_deg=(u(-20.0, 20.0), u(-12.0, 12.0), u(-12.0, 12.0)),
        scale=tuple(float(global_scale * v) for v in u(0.92, 1.08, 3)),  # type: ignore[arg-type]
        shift_mm=tuple(float(v) for v in u(-10.0, 10.0, 3)),  # type: ignore[arg-type]
        warp_rms_mm=u(2.0, 7.0),
        warp_fwhm_mm=u(25.0, 60.0),
        ventricle_mm=u(-1.5, 4.0),
        hu=hu,
        ct_blur_fwhm_mm=(0.6 + 0.5 * (1.0 - sharp), thickness),
        ct_noise_fwhm_mm=(2.2 - 1.2 * sharp, max(1.0, thickness)),
        ct_noise_sd=u(3.0, 12.0),
        atrophy=u(0.0, 0.8) if u() < 0.6 else 0.0,
        asymmetry=u(-0.04, 0.04),
        slice_thickness_mm=thickness,
        kernel_sharpness=sharp,
        cupping_hu=u(0.0, 10.0),
        calcifications={
            "choroid": u(120.0, 400.0) if u() < 0.5 else 0.0,
            "pineal": u(120.0, 400.0) if u() < 0.4 else 0.0,
        },
        coverage_cut_mm=cut,
    )


def _sample_calibrated(rng: np.random.Generator, source: str, ventricle_probability: float) -> SubjectParams:
    u = rng.uniform
    wm = u(17.5, 21.5)
    hu = {
        "csf": u(4.0, 10.0),
        "gm": wm + u(9.0, 12.0),
        "wm": wm,
        "cortical": u(1150.0, 1350.0),
        "diploe": u(450.0, 650.0),
        "fat": u(-105.0, -75.0),
        "soft": u(35.0, 50.0),
        "air": -1000.0,
    }
    global_scale = u(0.87, 0.96)  # MNI space is larger than real heads (real CT: 1445 ml)
    enlarge = bool(rng.uniform() < ventricle_probability)
    return SubjectParams(
        source=source,
        rotation_deg=tuple(float(v) for v in u(-6.0, 6.0, 3)),  # type: ignore[arg-type]
        scale=tuple(float(global_scale * v) for v in u(0.97, 1.03, 3)),  # type: ignore[arg-type]
        shift_mm=tuple(float(v) for v in u(-4.0, 4.0, 3)),  # type: ignore[arg-type]
        warp_rms_mm=u(1.0, 3.0),
        warp_fwhm_mm=u(25.0, 40.0),
        ventricle_mm=u(1.0, 3.5) if enlarge else 0.0,
        hu=hu,
        ct_inhomogeneity_hu=u(0.5, 2.0),
        bone_density_sd=u(0.10, 0.20),
        bone_texture_sd=u(0.10, 0.20),
        ct_blur_fwhm_mm=(u(0.7, 0.9), u(1.2, 1.8)),
        ct_noise_fwhm_mm=(u(1.5, 1.9), u(1.8, 2.4)),
        ct_noise_sd=u(6.3, 7.6),
        mri_gamma=u(0.7, 1.4),
        mri_saturation=u(0.0, 0.6),
        mri_bias_sd=u(0.02, 0.10),
        mri_noise=u(0.0, 0.02),
        mri_scale=u(600.0, 1400.0),
    )
