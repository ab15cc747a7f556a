"""Render a CT scan from tissue fraction maps: attenuation, kernel, slice profile, beam
hardening, noise.  Axial slices lie along the last array axis."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .radon import angles, back_project, filtered_back_projection, project
from .scanner import TISSUES, ScannerParams
from .texture import slice_profile_average, textured_noise

WATER_PER_MM = 0.019  # linear attenuation of water at a typical effective energy
BONE_TISSUES = ("cortical", "diploe", "calcification")
WORK_PIXEL_MM = 2.0  # the grid of the projection-domain effects (smooth by nature) ...
WORK_SLICE_MM = 3.0  # ... and the spacing of the slices they are computed on
PROJECTIONS = 180
HU_RANGE = (-1024, 3071)


def kernel_transfer(shape: tuple[int, int], pixel_mm: float, cutoff_per_mm: float, boost: float) -> np.ndarray:
    """The reconstruction kernel's in-plane transfer on the 2D FFT grid of ``shape``."""
    fx = np.fft.fftfreq(shape[0], pixel_mm)[:, None]
    fy = np.fft.fftfreq(shape[1], pixel_mm)[None, :]
    f = np.sqrt(fx**2 + fy**2) / cutoff_per_mm
    return np.where(f < 1.0, 0.5 * (1.0 + np.cos(np.pi * f)) * (1.0 + boost * f**2), 0.0)


def apply_kernel(hu: np.ndarray, pixel_mm: float, cutoff_per_mm: float, boost: float) -> np.ndarray:
    """Every axial slice filtered by the kernel, padded with its edge values against wrap-around."""
    pad = int(math.ceil(8.0 / pixel_mm))
    padded = np.pad(hu, [(pad, pad), (pad, pad), (0, 0)], mode="edge")
    transfer = kernel_transfer(padded.shape[:2], pixel_mm, cutoff_per_mm, boost)
    out = np.real(np.fft.ifft2(np.fft.fft2(padded, axes=(0, 1)) * transfer[..., None], axes=(0, 1)))
    return out[pad:-pad, pad:-pad].astype(np.float32)


def _to_work_grid(volume: np.ndarray, factor: int, step: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Every ``step``-th slice (Z', n, n), pooled by ``factor`` and centred in a square large
    enough to turn."""
    x, y, _ = volume.shape
    n = int(math.ceil(math.hypot(x, y) / factor)) + 2
    full = n * factor
    ox, oy = (full - x) // 2, (full - y) // 2
    picked = np.moveaxis(volume[:, :, ::step], 2, 0)
    square = np.zeros((picked.shape[0], full, full), dtype=np.float32)
    square[:, ox : ox + x, oy : oy + y] = picked
    pooled = F.avg_pool2d(torch.from_numpy(square)[:, None], factor)[:, 0]
    return pooled, (ox, oy, factor)


def _from_work_grid(
    images: torch.Tensor, where: tuple[int, int, int], shape: tuple[int, int, int], step: int
) -> np.ndarray:
    """Back onto the scan's grid: bilinear in-plane, linear between the picked slices."""
    ox, oy, factor = where
    full = F.interpolate(images[:, None], scale_factor=factor, mode="bilinear", align_corners=False)[:, 0]
    picked = np.moveaxis(full[:, ox : ox + shape[0], oy : oy + shape[1]].numpy(), 0, 2)
    position = np.minimum(np.arange(shape[2]) / step, picked.shape[2] - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, picked.shape[2] - 1)
    weight = (position - below).astype(np.float32)
    return picked[:, :, below] * (1 - weight) + picked[:, :, above] * weight


def projection_effects(
    fractions: np.ndarray, params: ScannerParams, pixel_mm: float, slice_spacing_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """(beam-hardening artefact per unit strength, relative noise variance) on the scan's grid.

    The artefact is the reconstruction of ``-p_bone^2``, the error that bone's harder beam leaves
    after a water-only correction (``p_bone`` the line integral of bone's extra attenuation); the
    noise variance of a pixel grows with the transmitted intensity lost on the rays through it,
    ``exp(p)`` back-projected."""
    index = {name: i for i, name in enumerate(TISSUES)}
    bone = sum(fractions[index[t]] * np.float32(params.hu[t] / 1000.0 * WATER_PER_MM) for t in BONE_TISSUES)
    levels = np.asarray([1.0 + params.hu[t] / 1000.0 for t in TISSUES], dtype=np.float32) * np.float32(WATER_PER_MM)
    attenuation = np.tensordot(levels, fractions, axes=1).astype(np.float32)
    factor = max(1, int(round(WORK_PIXEL_MM / pixel_mm)))
    step = max(1, int(round(WORK_SLICE_MM / slice_spacing_mm)))
    work_mm = pixel_mm * factor
    thetas = angles(PROJECTIONS)
    bone_work, where = _to_work_grid(np.asarray(bone, dtype=np.float32), factor, step)
    artefact = filtered_back_projection(-(project(bone_work, thetas, work_mm) ** 2), thetas, work_mm)
    total_work, _ = _to_work_grid(attenuation, factor, step)
    variance = back_project(torch.exp(project(total_work, thetas, work_mm)), thetas)
    shape = fractions.shape[1:]
    return _from_work_grid(artefact, where, shape, step), _from_work_grid(variance, where, shape, step)


def render_ct(fractions: np.ndarray, affine: np.ndarray, params: ScannerParams, rng: np.random.Generator) -> np.ndarray:
    """An int16 CT in HU of the tissue ``fractions`` (len(TISSUES), X, Y, Z) on grid ``affine``
    (axial slices along Z; square in-plane pixels)."""
    if fractions.shape[0] != len(TISSUES):
        raise ValueError(f"need {len(TISSUES)} fraction maps ({', '.join(TISSUES)}), got {fractions.shape[0]}")
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    if abs(spacing[0] - spacing[1]) > 1e-3 * spacing[0]:
        raise ValueError(f"in-plane pixels must be square, got {spacing[0]:g} x {spacing[1]:g} mm")
    pixel, depth = float(spacing[0]), float(spacing[2])
    levels = np.asarray([params.hu[t] for t in TISSUES], dtype=np.float32)
    hu = np.tensordot(levels, fractions, axes=1).astype(np.float32)
    hu = apply_kernel(hu, pixel, params.kernel_cutoff_per_mm, params.kernel_boost)

    artefact, variance = projection_effects(fractions, params, pixel, depth)
    reference = fractions[:3].sum(axis=0) > 0.5  # the intracranial volume, or else the whole head
    if not reference.any():
        reference = fractions[TISSUES.index("air")] < 0.5
    if reference.any():
        artefact -= np.float32(np.median(artefact[reference]))
        spread = float(np.percentile(np.abs(artefact[reference]), 95))
        artefact *= np.float32(params.streak_hu / max(spread, 1e-12))
        variance /= np.float32(max(float(np.median(variance[reference])), 1e-12))
    hu += artefact
    hu = slice_profile_average(hu, params.slice_mm, depth)

    noise = textured_noise(rng, hu.shape, pixel, params.kernel_cutoff_per_mm, params.slice_mm)
    sd_map = np.power(np.maximum(variance, 1e-6), np.float32(0.5 * params.noise_nonuniformity))
    hu += noise * sd_map * np.float32(params.noise_sd_hu)
    return np.clip(np.rint(hu), *HU_RANGE).astype(np.int16)
