"""Image-similarity metrics for synthetic MRI volumes.

Voxel-wise agreement (PSNR, MAE, MSE, NRMSE, 3D SSIM), slice consistency along the slice axis
(flicker of the per-slice mean error, z-gradient energy ratio), the 1D Wasserstein distance
between intensity distributions, and :func:`evaluate_volumes`, which applies them all the way
``ct2mri evaluate`` does.

All functions take two volumes of the same shape (numpy arrays or torch tensors, any float or
integer dtype) and an optional boolean ``mask`` of that shape restricting the statistic to the
voxels where it is True (e.g. the brain).  Computations run in float64.

SSIM follows Wang et al. (2004) in 3D: local statistics under an isotropic Gaussian window of
sigma 1.5 voxels sampled on 11 x 11 x 11 taps (radius 5), constants ``C1 = (0.01 L)^2`` and
``C2 = (0.03 L)^2`` with ``L = data_range``, population (not sample) variances.  At the volume's
borders the window is cut and its weights renormalised over the voxels inside the volume, so
volumes thinner than the window are handled without padding values.  The SSIM map is averaged
over the mask (or the whole volume).  (scikit-image's default, which the paper used, is a
uniform 7 x 7 x 7 window with sample variances and the borders cropped, so its numbers differ
slightly from these.)  Large volumes are processed in slabs along the first axis with a halo of
the window's radius, which gives exactly the one-piece result with bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..preprocessing.config import PreprocessConfig

ArrayLike = np.ndarray | torch.Tensor

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
NRMSE_NORMALIZATIONS = ("euclidean", "min-max", "mean")
NORMALISE_MODES = ("auto", "robust", "none")
ROBUST_PERCENTILES = PreprocessConfig().mri_percentiles  # the same as preprocessing
# Voxels per SSIM slab (plus its halo): bounds the memory of the dozen float64 work arrays.
_SSIM_SLAB_VOXELS = 1 << 22


def _as_float64(volume: ArrayLike) -> np.ndarray:
    if isinstance(volume, torch.Tensor):
        volume = volume.detach().cpu().numpy()
    return np.asarray(volume, dtype=np.float64)


def _as_bool(mask: ArrayLike) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    return np.asarray(mask) != 0


def _pair(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both volumes as float64 plus the selected voxels' boolean mask, after shape checks."""
    p, r = _as_float64(pred), _as_float64(ref)
    if p.shape != r.shape:
        raise ValueError(f"shapes differ: prediction {p.shape}, reference {r.shape}")
    if mask is None:
        m = np.ones(p.shape, dtype=bool)
    else:
        m = _as_bool(mask)
        if m.shape != p.shape:
            raise ValueError(f"mask shape {m.shape} differs from volume shape {p.shape}")
    if not m.any():
        raise ValueError("the mask selects no voxel")
    return p, r, m


def mse(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean squared error over the mask."""
    p, r, m = _pair(pred, ref, mask)
    return float(np.mean((p[m] - r[m]) ** 2))


def mae(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean absolute error over the mask."""
    p, r, m = _pair(pred, ref, mask)
    return float(np.mean(np.abs(p[m] - r[m])))


def psnr(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``; inf for identical volumes."""
    error = mse(pred, ref, mask)
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / error)


def nrmse(
    pred: ArrayLike,
    ref: ArrayLike,
    mask: ArrayLike | None = None,
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


def _ssim_block(x: torch.Tensor, y: torch.Tensor, taps: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """SSIM map of two (1, 1, Z, H, W) float64 blocks with the window cut at the blocks' borders."""
    norm = _blur(torch.ones_like(x), taps)
    mu_x, mu_y = _local_mean(x, taps, norm), _local_mean(y, taps, norm)
    var_x = _local_mean(x * x, taps, norm) - mu_x**2
    var_y = _local_mean(y * y, taps, norm) - mu_y**2
    cov = _local_mean(x * y, taps, norm) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den)[0, 0]


def _ssim_slabs(p: np.ndarray, r: np.ndarray, data_range: float) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, SSIM of slices start:stop) over the first axis.

    Each slab is computed with ``SSIM_RADIUS`` extra slices on both sides (fewer at the volume's
    ends), so every window it reports lies inside the block and the values equal the one-piece
    computation's; zero padding beyond the block only touches the discarded halo, or the volume's
    true borders, where cutting the window is the definition.
    """
    if p.shape != r.shape:
        raise ValueError(f"shapes differ: prediction {p.shape}, reference {r.shape}")
    if p.ndim != 3:
        raise ValueError(f"SSIM needs 3D volumes, got {p.ndim} dimensions")
    taps = torch.from_numpy(gaussian_taps())
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    depth = p.shape[0]
    slab = max(1, _SSIM_SLAB_VOXELS // max(1, p.shape[1] * p.shape[2]))
    for start in range(0, depth, slab):
        stop = min(depth, start + slab)
        lo, hi = max(0, start - SSIM_RADIUS), min(depth, stop + SSIM_RADIUS)
        x = torch.from_numpy(np.ascontiguousarray(p[lo:hi]))[None, None]
        y = torch.from_numpy(np.ascontiguousarray(r[lo:hi]))[None, None]
        block = _ssim_block(x, y, taps, c1, c2)
        yield start, stop, block[start - lo : stop - lo].numpy()


def ssim_map(pred: ArrayLike, ref: ArrayLike, data_range: float = 1.0) -> np.ndarray:
    """The voxel-wise 3D SSIM of two volumes (see the module docstring for the window)."""
    p, r = _as_float64(pred), _as_float64(ref)
    out = np.empty(p.shape, dtype=np.float64)
    for start, stop, block in _ssim_slabs(p, r, data_range):
        out[start:stop] = block
    return out


def ssim(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None, data_range: float = 1.0) -> float:
    """Mean 3D SSIM over the mask (or the whole volume); 1 for identical volumes."""
    p, r, m = _pair(pred, ref, mask)
    total = 0.0
    for start, stop, block in _ssim_slabs(p, r, data_range):
        total += float(block[m[start:stop]].sum())
    return total / int(np.count_nonzero(m))


def _slice_mask(mask: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(mask, axis, 0)


def slice_flicker(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None, axis: int = 0) -> float:
    """Flicker of the per-slice mean error along ``axis``: ``mean_k |e_{k+1} - e_k|``.

    ``e_k`` is the mean of ``pred - ref`` over the mask's voxels in slice ``k``; the mean runs
    over the pairs of neighbouring slices that both hold mask voxels.  0 when the error's mean
    is the same in every slice (a constant bias does not count), large when the prediction's
    brightness jumps from slice to slice.  In the volumes' intensity units.
    """
    p, r, m = _pair(pred, ref, mask)
    error = np.moveaxis(p - r, axis, 0)
    m = _slice_mask(m, axis)
    counts = m.reshape(m.shape[0], -1).sum(axis=1)
    sums = np.where(m, error, 0.0).reshape(m.shape[0], -1).sum(axis=1)
    present = counts > 0
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
    pairs = present[1:] & present[:-1]
    if not pairs.any():
        raise ValueError("slice flicker needs two neighbouring slices holding mask voxels")
    return float(np.mean(np.abs(np.diff(means))[pairs]))


def z_gradient_ratio(pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None, axis: int = 0) -> float:
    """Energy of the error's finite difference along ``axis`` over the reference's.

    ``sum (e[k+1] - e[k])^2 / sum (ref[k+1] - ref[k])^2`` with ``e = pred - ref``, both sums over
    the voxel pairs (k, k+1) whose two voxels are in the mask.  0 for an error that does not
    change from slice to slice; about 2 x (error variance) / (reference's slice-to-slice
    variation) for errors independent between slices, so lower means more slice-consistent.
    """
    p, r, m = _pair(pred, ref, mask)
    error = np.moveaxis(p - r, axis, 0)
    reference = np.moveaxis(r, axis, 0)
    m = _slice_mask(m, axis)
    both = m[1:] & m[:-1]
    if not both.any():
        raise ValueError("the z-gradient ratio needs mask voxels in two neighbouring slices")
    error_energy = float(np.sum(np.diff(error, axis=0)[both] ** 2))
    reference_energy = float(np.sum(np.diff(reference, axis=0)[both] ** 2))
    if reference_energy == 0.0:
        raise ValueError("the reference does not change between slices; the z-gradient ratio is undefined")
    return error_energy / reference_energy


def wasserstein_1d(u: ArrayLike, v: ArrayLike) -> float:
    """The 1-Wasserstein (earth mover's) distance between two samples' empirical distributions.

    Exact: ``integral |F_u(x) - F_v(x)| dx`` evaluated piecewise between the pooled sorted
    values, where ``F`` are the empirical CDFs (any sample sizes).  For equal sizes this equals
    ``mean |sort(u) - sort(v)|``.  It is the limit of the distance between the two intensity
    histograms as the bins shrink, so it carries no binning choice.
    """
    a = np.sort(_as_float64(u).ravel())
    b = np.sort(_as_float64(v).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("the Wasserstein distance needs two non-empty samples")
    pooled = np.sort(np.concatenate([a, b]))
    widths = np.diff(pooled)
    cdf_a = np.searchsorted(a, pooled[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, pooled[:-1], side="right") / b.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))


def to_unit_range(
    volume: ArrayLike,
    mask: ArrayLike | None = None,
    mode: str = "auto",
    percentiles: tuple[float, float] = ROBUST_PERCENTILES,
    source: str = "volume",
) -> tuple[np.ndarray, bool]:
    """A volume on [0, 1] for comparison, and whether it was rescaled.

    ``robust``: the ``percentiles`` of the voxels inside ``mask`` (without a mask: the voxels
    above 0, or all voxels when none is) go to 0 and 1, then clip, as preprocessing does to
    MRIs.  ``auto``: a volume already within [0, 1] is kept as it is (model outputs and
    preprocessed volumes are in that space already; stretching them again would hide intensity
    errors), any other gets ``robust``.  ``none``: kept as it is.
    """
    from ..preprocessing.intensity import mri_percentile_range

    if mode not in NORMALISE_MODES:
        raise ValueError(f"normalisation must be one of {NORMALISE_MODES}, got {mode!r}")
    data = _as_float64(volume)
    if mode == "none" or (mode == "auto" and float(data.min()) >= 0.0 and float(data.max()) <= 1.0):
        return data, False
    region = _as_bool(mask) if mask is not None else data > 0
    if not region.any():
        region = np.ones(data.shape, dtype=bool)
    lo, hi = mri_percentile_range(data, region, percentiles, source=source)
    return np.clip((data - lo) / (hi - lo), 0.0, 1.0), True


METRIC_NAMES = ("mae", "psnr", "ssim", "nrmse", "flicker", "z_gradient_ratio", "wasserstein")


def evaluate_volumes(
    pred: ArrayLike,
    ref: ArrayLike,
    mask: ArrayLike | None = None,
    whole_volume: bool = False,
    normalise: str = "auto",
    axis: int = 0,
) -> dict[str, float]:
    """Every metric of ``ct2mri evaluate`` for one pair, keyed by :data:`METRIC_NAMES` plus ``voxels``.

    Both volumes go through :func:`to_unit_range` with ``normalise`` (percentiles inside the
    mask).  With a mask, voxels outside it are then set to 0 in both, so that whatever lies
    outside the brain cannot enter SSIM's windows at the brain's border.  The statistics run
    over the mask's voxels, or with ``whole_volume`` over every voxel (the paper's unmasked
    variant: brain-masked volumes scored with their zero background).  PSNR and SSIM use data
    range 1; NRMSE is the RMSE over the reference's range (max - min over the same voxels);
    flicker and the z-gradient ratio run along ``axis`` (the slice axis); the Wasserstein
    distance compares the two volumes' intensity distributions over the same voxels.
    """
    p, r, m = _pair(pred, ref, mask)
    p, _ = to_unit_range(p, m if mask is not None else None, normalise, source="prediction")
    r, _ = to_unit_range(r, m if mask is not None else None, normalise, source="reference")
    if mask is not None:
        p = np.where(m, p, 0.0)
        r = np.where(m, r, 0.0)
    scored = np.ones(p.shape, dtype=bool) if whole_volume or mask is None else m
    return {
        "mae": mae(p, r, scored),
        "psnr": psnr(p, r, scored, data_range=1.0),
        "ssim": ssim(p, r, scored, data_range=1.0),
        "nrmse": nrmse(p, r, scored, normalization="min-max"),
        "flicker": slice_flicker(p, r, scored, axis=axis),
        "z_gradient_ratio": z_gradient_ratio(p, r, scored, axis=axis),
        "wasserstein": wasserstein_1d(p[scored], r[scored]),
        "voxels": float(np.count_nonzero(scored)),
    }
