"""Intensity normalisation to [0, 1]: a HU window for CT, robust min-max inside the brain for MRI."""

from __future__ import annotations

import numpy as np

from ..errors import Ct2mriError


def normalize_ct(hu: np.ndarray, window_hu: tuple[float, float] = (0.0, 80.0)) -> np.ndarray:
    """Map the HU window [lo, hi] linearly onto [0, 1] and clip (float32)."""
    lo, hi = float(window_hu[0]), float(window_hu[1])
    if not hi > lo:
        raise Ct2mriError(f"CT window must have lo < hi, got {lo:g} {hi:g}")
    out = (np.asarray(hu, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def mri_percentile_range(
    data: np.ndarray,
    mask: np.ndarray | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    source: str = "MRI",
) -> tuple[float, float]:
    """The (low, high) intensity percentiles of ``data`` inside ``mask`` (whole volume if None)."""
    values = np.asarray(data)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the volume {values.shape}")
        values = values[mask]
    if values.size == 0:
        raise Ct2mriError(f"{source}: the brain mask is empty; cannot normalise intensities")
    p_lo, p_hi = float(percentiles[0]), float(percentiles[1])
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise Ct2mriError(f"MRI percentiles must satisfy 0 <= low < high <= 100, got {p_lo:g} {p_hi:g}")
    lo, hi = np.percentile(values.astype(np.float64), [p_lo, p_hi])
    if not hi > lo:
        raise Ct2mriError(f"{source}: intensities inside the brain are constant ({lo:g}); cannot normalise")
    return float(lo), float(hi)


def normalize_mri(
    data: np.ndarray,
    mask: np.ndarray | None = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    zero_outside: bool = True,
    source: str = "MRI",
) -> np.ndarray:
    """Robust min-max: the ``percentiles`` inside ``mask`` go to 0 and 1, then clip (float32).

    With ``zero_outside`` voxels outside the mask are set to 0 (background).
    """
    lo, hi = mri_percentile_range(data, mask, percentiles, source)
    out = np.clip((np.asarray(data, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    if mask is not None and zero_outside:
        out[~np.asarray(mask, dtype=bool)] = 0.0
    return out
