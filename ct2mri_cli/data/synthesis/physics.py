"""Imaging physics of a subject, and the CT measurements it is calibrated against.

CT: bone density variation, inhomogeneity, anisotropic blur and correlated noise applied to
noise-free HU.  MRI: a contrast curve, bias field, noise and scanner scale applied to a T1
normalised to white matter = 1.  :func:`ct_statistics` measures real and synthetic CTs the same
way, for calibration and tests.
"""

from __future__ import annotations

import numpy as np

from ...io.images import FWHM_TO_SIGMA
from .imaging import _distance_mm, _morph, gaussian_blur
from .subject import SubjectParams

HU_MIN, HU_MAX = -1024, 3071
CUPPING_DEPTH_MM = 8.0
KERNEL_GAIN = 1.5  # unsharp-mask weight of the sharpest kernel


def correlated_noise(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    sd: float,
    fwhm_mm: tuple[float, float],
) -> np.ndarray:
    """Gaussian noise with SD ``sd`` correlated by a Gaussian kernel (in-plane, through-plane FWHM)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    noise = gaussian_blur(white, affine, (fwhm_mm[0], fwhm_mm[0], fwhm_mm[1]))
    return noise * np.float32(sd / max(float(noise.std()), 1e-12))


def ct_from_hu(
    hu: np.ndarray,
    affine: np.ndarray,
    params: SubjectParams,
    rng: np.random.Generator,
    inhomogeneity: np.ndarray | None = None,
    density: np.ndarray | None = None,
    brain: np.ndarray | None = None,
) -> np.ndarray:
    """Apply CT physics to noise-free HU: bone density variation, inhomogeneity, cupping, blur,
    kernel, noise.

    ``density`` is a smooth unit-SD field modulating bone (the part of HU above 100) with
    relative SD ``bone_density_sd``; a fine random texture (FWHM 2 mm) adds
    ``bone_texture_sd``.  Cupping raises the HU inside ``brain`` by ``cupping_hu`` at the inner
    table, falling off with depth (1/e at 8 mm).  A sharp kernel enhances in-plane edges
    (unsharp masking with weight ``KERNEL_GAIN kernel_sharpness``); its finer noise grain is in
    ``ct_noise_fwhm_mm``.  Returns int16 HU.
    """
    bone = np.maximum(hu - np.float32(100.0), 0.0)
    variation = correlated_noise(rng, hu.shape, affine, params.bone_texture_sd, (2.0, 2.0))
    if density is not None:
        variation += density * np.float32(params.bone_density_sd)
    ct = hu + bone * variation
    if inhomogeneity is not None:
        ct += inhomogeneity
    if params.cupping_hu > 0 and brain is not None:
        depth = _distance_mm(~np.asarray(brain, dtype=bool), affine)
        ct += brain * np.float32(params.cupping_hu) * np.exp(-depth / np.float32(CUPPING_DEPTH_MM))
    blur = params.ct_blur_fwhm_mm
    ct = gaussian_blur(ct, affine, (blur[0], blur[0], blur[1]))
    if params.kernel_sharpness > 0:
        ct += np.float32(KERNEL_GAIN * params.kernel_sharpness) * (ct - gaussian_blur(ct, affine, (1.5, 1.5, 0.0)))
    ct += correlated_noise(rng, ct.shape, affine, params.ct_noise_sd, params.ct_noise_fwhm_mm)
    return np.clip(np.rint(ct), HU_MIN, HU_MAX).astype(np.int16)


def mri_appearance(
    t1n: np.ndarray,
    params: SubjectParams,
    rng: np.random.Generator,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """T1 (white matter = 1) to an int16 scan: contrast curve, bias, noise and scale."""
    y = np.power(np.maximum(t1n, 0.0), np.float32(params.mri_gamma))
    k = np.float32(params.mri_saturation)
    y = y * (1 + k) / (1 + k * y)
    if bias is not None:
        y = y * bias
    if params.mri_noise > 0:
        y = y + (t1n > 0.05) * rng.standard_normal(y.shape, dtype=np.float32) * np.float32(params.mri_noise)
    else:
        rng.standard_normal(1)
    y = np.maximum(y, 0.0) * np.float32(params.mri_scale)
    return np.clip(np.rint(y), 0, 32767).astype(np.int16)


def ct_statistics(hu: np.ndarray, affine: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Numbers that characterise a head CT, measured the same way on real and synthetic scans.

    - ``brain_median``, ``brain_iqr``: HU inside the brain mask eroded by 3 mm;
    - ``noise_sd``: robust SD (1.4826 x MAD) of the HU minus its masked Gaussian smoothing
      (sigma 2 mm) in the same region (noise plus fine texture);
    - ``bone_p5`` ... ``bone_p95``: percentiles of voxels >= 300 HU within 12 mm of the brain.
    """
    hu = np.asarray(hu, dtype=np.float32)
    brain = np.asarray(brain, dtype=bool)
    inner = _morph(brain, affine, "erode", 3.0)
    if inner.sum() < 100:
        raise ValueError("the brain mask is too small to measure")
    values = hu[inner]
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    weight = inner.astype(np.float32)
    fwhm = 2.0 / FWHM_TO_SIGMA
    num = gaussian_blur(hu * weight, affine, (fwhm, fwhm, fwhm))
    den = gaussian_blur(weight, affine, (fwhm, fwhm, fwhm))
    resid = (hu - num / np.maximum(den, 1e-3))[inner]
    noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    near = _distance_mm(brain, affine) <= 12.0
    bone = hu[near & (hu >= 300)]
    stats = {"brain_median": float(q50), "brain_iqr": float(q75 - q25), "noise_sd": noise}
    for p, v in zip((5, 25, 50, 75, 95), np.percentile(bone, [5, 25, 50, 75, 95]) if bone.size else [np.nan] * 5):
        stats[f"bone_p{p}"] = float(v)
    return stats
