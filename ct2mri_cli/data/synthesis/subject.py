"""Synthetic subjects: the parameters that vary between people and scans, and how they are drawn.

One :class:`SubjectParams` fixes a subject's geometry, CT physics and MRI appearance; it is what
the manifest records for every case.  :mod:`.deformation` and :mod:`.physics` consume it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


def sample_subject(rng: np.random.Generator, source: str, ventricle_probability: float = 0.5) -> SubjectParams:
    """Draw one subject's geometry, CT physics and MRI appearance from ``rng``.

    The ranges are calibrated on the real head CT of Debian's invesalius-examples (see
    docs/SYNTHETIC_DATA.md).
    """
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
