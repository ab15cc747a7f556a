"""CT noise with the texture measured on a real head CT (``noise_texture.json``).

The file (written by ``scripts/measure_ct_noise.py``) holds the in-plane noise power spectrum of
the real CT's residual in homogeneous brain, averaged over rings of radial frequency.  White noise
is filtered, slice by slice, by the square root of that spectrum (its frequency axis stretched by
the scan's kernel), averaged through the slice profile, and scaled to the SD asked for.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

TEXTURE_FILE = Path(__file__).with_name("noise_texture.json")
REFERENCE_CUTOFF_PER_MM = 0.55  # the kernel cutoff at which the measured texture is used as is


@functools.lru_cache(maxsize=1)
def measured_spectrum() -> tuple[np.ndarray, np.ndarray]:
    """(ring frequencies in cycles/mm, relative noise power) of the real head CT."""
    data = json.loads(TEXTURE_FILE.read_text())
    return np.asarray(data["frequency_per_mm"], dtype=np.float64), np.asarray(data["nps_relative"], dtype=np.float64)


def spectrum_amplitude(shape: tuple[int, int], pixel_mm: float, cutoff_per_mm: float) -> np.ndarray:
    """Square root of the measured spectrum on the 2D FFT grid of ``shape``, its frequency axis
    stretched by ``cutoff_per_mm / REFERENCE_CUTOFF_PER_MM``; 0 beyond the measured range."""
    freqs, power = measured_spectrum()
    stretch = cutoff_per_mm / REFERENCE_CUTOFF_PER_MM
    fx = np.fft.fftfreq(shape[0], pixel_mm)[:, None]
    fy = np.fft.fftfreq(shape[1], pixel_mm)[None, :]
    radius = np.sqrt(fx**2 + fy**2) / stretch
    top = freqs[-1] + (freqs[1] - freqs[0]) / 2
    values = np.interp(radius, freqs, power)
    return np.sqrt(np.where(radius <= top, values, 0.0))


def slice_profile_average(volume: np.ndarray, slice_mm: float, spacing_mm: float) -> np.ndarray:
    """Average along the last axis over a rectangular profile ``slice_mm`` wide (edges weighted by
    the share of the voxel inside); unchanged when the slice is no wider than a voxel."""
    half = slice_mm / spacing_mm / 2.0
    if half <= 0.5:
        return volume
    reach = int(np.ceil(half - 0.5))
    offsets = np.arange(-reach, reach + 1)
    weights = np.clip(half + 0.5 - np.abs(offsets), 0.0, 1.0)
    weights /= weights.sum()
    padded = np.pad(volume, [(0, 0), (0, 0), (reach, reach)], mode="edge")
    out = np.zeros_like(volume)
    depth = volume.shape[2]
    for offset, weight in zip(offsets, weights):
        out += np.float32(weight) * padded[:, :, reach + offset : reach + offset + depth]
    return out


def textured_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing_mm: float, cutoff_per_mm: float, slice_mm: float
) -> np.ndarray:
    """Unit-SD noise (float32, axial slices along the last axis) with the measured texture."""
    amplitude = spectrum_amplitude(shape[:2], spacing_mm, cutoff_per_mm)
    white = rng.standard_normal(shape, dtype=np.float32)
    noise = np.real(np.fft.ifft2(np.fft.fft2(white, axes=(0, 1)) * amplitude[..., None], axes=(0, 1)))
    noise = slice_profile_average(noise.astype(np.float32), slice_mm, spacing_mm)
    return noise / np.float32(max(float(noise.std()), 1e-12))
