"""Image-similarity metrics for synthetic MRI volumes: PSNR, MAE, NRMSE and 3D SSIM.

All functions take two volumes of the same shape (numpy arrays or torch tensors, any float or
integer dtype) and an optional boolean ``mask`` of that shape restricting the statistic to the
voxels where it is True (e.g. the brain).  Computations run in float64.

SSIM follows Wang et al. (2004) in 3D: local statistics under an isotropic Gaussian window of
sigma 1.5 voxels sampled on 11 x 11 x 11 taps (radius 5), constants ``C1 = (0.01 L)^2`` and
``C2 = (0.03 L)^2`` with ``L = data_range``, population (not sample) variances.  At the volume's
borders the window is cut and its weights renormalised over the voxels inside the volume, so
volumes thinner than the window are handled without padding values.  The SSIM map is averaged
over the mask (or the whole volume).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = Union[np.ndarray, torch.Tensor]

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
NRMSE_NORMALIZATIONS = ("euclidean", "min-max", "mean")


def _as_float64(volume: ArrayLike) -> np.ndarray:
    if isinstance(volume, torch.Tensor):
        volume = volume.detach().cpu().numpy()
    return np.asarray(volume, dtype=np.float64)


def _pair(pred: ArrayLike, ref: ArrayLike, mask: Optional[ArrayLike]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both volumes as float64 plus the selected voxels' boolean mask, after shape checks."""
    p, r = _as_float64(pred), _as_float64(ref)
    if p.shape != r.shape:
        raise ValueError(f"shapes differ: prediction {p.shape}, reference {r.shape}")
    if mask is None:
        m = np.ones(p.shape, dtype=bool)
    else:
        m = _as_float64(mask) != 0
        if m.shape != p.shape:
            raise ValueError(f"mask shape {m.shape} differs from volume shape {p.shape}")
    if not m.any():
        raise ValueError("the mask selects no voxel")
    return p, r, m


def mse(pred: ArrayLike, ref: ArrayLike, mask: Optional[ArrayLike] = None) -> float:
    """Mean squared error over the mask."""
    p, r, m = _pair(pred, ref, mask)
    return float(np.mean((p[m] - r[m]) ** 2))


def mae(pred: ArrayLike, ref: ArrayLike, mask: Optional[ArrayLike] = None) -> float:
    """Mean absolute error over the mask."""
    p, r, m = _pair(pred, ref, mask)
    return float(np.mean(np.abs(p[m] - r[m])))


def psnr(pred: ArrayLike, ref: ArrayLike, mask: Optional[ArrayLike] = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; inf for identical volumes."""
    error = mse(pred, ref, mask)
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / error)


def nrmse(
    pred: ArrayLike,
    ref: ArrayLike,
    mask: Optional[ArrayLike] = None,
    normalization: str = "euclidean",
) -> float:
    """Root-mean-square error divided by a scale of the reference (as scikit-image defines it).

    ``"euclidean"``: the reference's root mean square (= ||ref - pred|| / ||ref||);
    ``"min-max"``: the reference's range; ``"mean"``: the reference's mean.
    """
    p, r, m = _pair(pred, ref, mask)
    ref_values = r[m]
    if normalization == "euclidean":
        denom = math.sqrt(float(np.mean(ref_values**2)))
    elif normalization == "min-max":
        denom = float(ref_values.max() - ref_values.min())
    elif normalization == "mean":
        denom = float(ref_values.mean())
    else:
        raise ValueError(f"normalization must be one of {NRMSE_NORMALIZATIONS}, got {normalization!r}")
    if denom == 0.0:
        raise ValueError(f"the reference's {normalization} scale is zero; NRMSE is undefined")
    return math.sqrt(float(np.mean((p[m] - ref_values) ** 2))) / denom


def gaussian_taps(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> np.ndarray:
    """The normalised 1D Gaussian window of ``2 radius + 1`` taps used by :func:`ssim`."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def _local_mean(volume: torch.Tensor, taps: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """Gaussian-weighted local mean of a (1, 1, Z, H, W) volume, window cut at the borders."""
    return _blur(volume, taps) / norm


def _blur(volume: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    k = taps.numel()
    r = k // 2
    out = F.conv3d(volume, taps.view(1, 1, k, 1, 1), padding=(r, 0, 0))
    out = F.conv3d(out, taps.view(1, 1, 1, k, 1), padding=(0, r, 0))
    return F.conv3d(out, taps.view(1, 1, 1, 1, k), padding=(0, 0, r))


def ssim_map(pred: ArrayLike, ref: ArrayLike, data_range: float = 1.0) -> np.ndarray:
    """The voxel-wise 3D SSIM of two volumes (see the module docstring for the window)."""
    p, r = _as_float64(pred), _as_float64(ref)
    if p.shape != r.shape:
        raise ValueError(f"shapes differ: prediction {p.shape}, reference {r.shape}")
    if p.ndim != 3:
        raise ValueError(f"SSIM needs 3D volumes, got {p.ndim} dimensions")
    taps = torch.from_numpy(gaussian_taps())
    x = torch.from_numpy(np.ascontiguousarray(p))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(r))[None, None]
    norm = _blur(torch.ones_like(x), taps)
    mu_x, mu_y = _local_mean(x, taps, norm), _local_mean(y, taps, norm)
    var_x = _local_mean(x * x, taps, norm) - mu_x**2
    var_y = _local_mean(y * y, taps, norm) - mu_y**2
    cov = _local_mean(x * y, taps, norm) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den)[0, 0].numpy()


def ssim(pred: ArrayLike, ref: ArrayLike, mask: Optional[ArrayLike] = None, data_range: float = 1.0) -> float:
    """Mean 3D SSIM over the mask (or the whole volume); 1 for identical volumes."""
    p, r, m = _pair(pred, ref, mask)
    return float(ssim_map(p, r, data_range)[m].mean())
