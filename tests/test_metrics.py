import itertools
import math

import numpy as np
import pytest
import torch

from ct2mri_cli.evaluation import metrics
from ct2mri_cli.evaluation.metrics import (
    evaluate_volumes,
    gaussian_taps,
    mae,
    mse,
    nrmse,
    psnr,
    slice_flicker,
    ssim,
    ssim_map,
    to_unit_range,
    wasserstein_1d,
    z_gradient_ratio,
)


def test_psnr_mae_nrmse_by_hand():
    ref = np.array([[[0.0, 0.5], [1.0, 0.25]]])
    pred = np.array([[[0.1, 0.5], [0.8, 0.25]]])
    # errors: 0.1, 0, -0.2, 0 -> MSE = (0.01 + 0.04) / 4 = 0.0125, MAE = 0.3 / 4 = 0.075
    assert mse(pred, ref) == pytest.approx(0.0125, abs=1e-15)
    assert mae(pred, ref) == pytest.approx(0.075, abs=1e-15)
    assert psnr(pred, ref) == pytest.approx(10 * math.log10(1 / 0.0125), abs=1e-12)
    assert psnr(pred, ref, data_range=2.0) == pytest.approx(10 * math.log10(4 / 0.0125), abs=1e-12)
    rms_ref = math.sqrt((0 + 0.25 + 1 + 0.0625) / 4)
    assert nrmse(pred, ref) == pytest.approx(math.sqrt(0.0125) / rms_ref, abs=1e-12)
    assert nrmse(pred, ref, normalization="min-max") == pytest.approx(math.sqrt(0.0125) / 1.0, abs=1e-12)
    assert nrmse(pred, ref, normalization="mean") == pytest.approx(math.sqrt(0.0125) / 0.4375, abs=1e-12)


def test_mask_restricts_the_voxels():
    ref = np.array([[[0.0, 0.5], [1.0, 0.25]]])
    pred = np.array([[[0.1, 0.5], [0.8, 0.25]]])
    mask = np.array([[[True, True], [False, False]]])
    # only errors 0.1 and 0 count
    assert mse(pred, ref, mask) == pytest.approx(0.005, abs=1e-15)
    assert mae(pred, ref, mask) == pytest.approx(0.05, abs=1e-15)
    assert psnr(pred, ref, mask) == pytest.approx(10 * math.log10(1 / 0.005), abs=1e-12)


def test_identical_volumes_and_torch_inputs():
    rng = np.random.default_rng(0)
    v = rng.random((6, 9, 10))
    assert psnr(v, v) == math.inf
    assert mae(torch.from_numpy(v).float(), torch.from_numpy(v).float()) == 0.0
    assert ssim(v, v) == pytest.approx(1.0, abs=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="selects no voxel"):
        mae(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="normalization"):
        nrmse(np.ones((2, 2, 2)), np.ones((2, 2, 2)), normalization="max")
    with pytest.raises(ValueError, match="3D"):
        ssim(np.ones((4, 4)), np.ones((4, 4)))


def test_gaussian_taps():
    taps = gaussian_taps()
    assert taps.shape == (11,) and taps.sum() == pytest.approx(1.0)
    assert taps[6] / taps[5] == pytest.approx(math.exp(-0.5 / 1.5**2))


def test_ssim_of_constant_volumes_by_hand():
    # Constant volumes have zero variance and covariance: SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.5, 0.25
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(np.full((3, 4, 5), a), np.full((3, 4, 5), b)) == pytest.approx(expected, abs=1e-12)


def _ssim_brute_force(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Voxel by voxel with explicit loops: weights g(dz) g(dy) g(dx) over in-volume neighbours."""
    g = {d: math.exp(-0.5 * (d / 1.5) ** 2) for d in range(-5, 6)}
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.zeros(x.shape)
    Z, H, W = x.shape
    for k in range(Z):
        for i in range(H):
            for j in range(W):
                sw = sx = sy = sxx = syy = sxy = 0.0
                for dk in range(-5, 6):
                    for di in range(-5, 6):
                        for dj in range(-5, 6):
                            kk, ii, jj = k + dk, i + di, j + dj
                            if 0 <= kk < Z and 0 <= ii < H and 0 <= jj < W:
                                w = g[dk] * g[di] * g[dj]
                                a, b = x[kk, ii, jj], y[kk, ii, jj]
                                sw += w
                                sx += w * a
                                sy += w * b
                                sxx += w * a * a
                                syy += w * b * b
                                sxy += w * a * b
                mx, my = sx / sw, sy / sw
                vx, vy, cxy = sxx / sw - mx * mx, syy / sw - my * my, sxy / sw - mx * my
                out[k, i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return out


def test_ssim_map_against_brute_force():
    rng = np.random.default_rng(1)
    x = rng.random((3, 4, 7))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    expected = _ssim_brute_force(x, y)
    np.testing.assert_allclose(ssim_map(x, y), expected, rtol=1e-10, atol=1e-12)
    mask = rng.random(x.shape) > 0.5
    assert ssim(x, y, mask) == pytest.approx(expected[mask].mean(), rel=1e-10)


def test_ssim_symmetric_and_lower_under_noise():
    rng = np.random.default_rng(2)
    z, yy, xx = np.mgrid[0:8, 0:20, 0:20]
    ref = 0.5 + 0.4 * np.sin(xx / 3.0) * np.cos(yy / 4.0) * np.cos(z / 5.0)
    small = np.clip(ref + 0.02 * rng.standard_normal(ref.shape), 0, 1)
    large = np.clip(ref + 0.2 * rng.standard_normal(ref.shape), 0, 1)
    assert ssim(small, ref) == pytest.approx(ssim(ref, small), abs=1e-12)
    assert 1.0 > ssim(small, ref) > ssim(large, ref) > 0.0


def test_psnr_mae_nrmse_against_numpy_on_random_volumes():
    rng = np.random.default_rng(3)
    ref = rng.random((5, 7, 6))
    pred = np.clip(ref + 0.1 * rng.standard_normal(ref.shape), 0, 1)
    mask = rng.random(ref.shape) > 0.3
    e = (pred - ref)[mask]
    r = ref[mask]
    assert mae(pred, ref, mask) == pytest.approx(np.abs(e).sum() / mask.sum(), rel=1e-13)
    assert psnr(pred, ref, mask) == pytest.approx(-10 * np.log10(np.square(e).sum() / mask.sum()), rel=1e-13)
    expected_nrmse = np.sqrt(np.square(e).sum() / mask.sum()) / (r.max() - r.min())
    assert nrmse(pred, ref, mask, normalization="min-max") == pytest.approx(expected_nrmse, rel=1e-13)


def test_ssim_two_voxel_volume_by_hand():
    # Along a 2-voxel axis the cut window keeps weights g(0), g(1) renormalised; voxel 0 gives its
    # neighbour the weight p = g1 / (g0 + g1), voxel 1 gives it q = 1 - p.  With x = [0, 1] and
    # y = x / 2: mean_x = w, mean_y = w/2, var_x = w(1-w), var_y = var_x/4, cov = var_x/2 (w = p or q).
    x = np.array([[[0.0, 1.0]]])
    y = x / 2
    g1 = math.exp(-1 / (2 * 1.5**2))
    c1, c2 = 0.01**2, 0.03**2

    def by_hand(w):
        v = w * (1 - w)
        return (2 * w * (w / 2) + c1) * (2 * (v / 2) + c2) / ((w * w + w * w / 4 + c1) * (v + v / 4 + c2))

    p = g1 / (1 + g1)
    expected = [by_hand(p), by_hand(1 - p)]
    np.testing.assert_allclose(ssim_map(x, y)[0, 0], expected, rtol=1e-12)
    assert ssim(x, y) == pytest.approx(sum(expected) / 2, rel=1e-12)
    assert ssim(x, y) == pytest.approx(ssim(y, x), rel=1e-12)


def test_ssim_in_slabs_equals_one_piece(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.random((13, 6, 5))
    y = np.clip(x + 0.3 * rng.standard_normal(x.shape), 0, 1)
    mask = rng.random(x.shape) > 0.5
    whole = ssim_map(x, y)
    whole_mean = ssim(x, y, mask)
    monkeypatch.setattr(metrics, "_SSIM_SLAB_VOXELS", 3 * 6 * 5)  # 3-slice slabs, narrower than the halo
    np.testing.assert_allclose(ssim_map(x, y), whole, rtol=1e-13, atol=1e-15)
    assert ssim(x, y, mask) == pytest.approx(whole_mean, rel=1e-13)
    assert ssim(x, y, mask) == pytest.approx(whole[mask].mean(), rel=1e-13)


def test_wasserstein_by_hand():
    assert wasserstein_1d(np.array([0.2]), np.array([0.7])) == pytest.approx(0.5, abs=1e-15)
    # u = {0, 1}: CDF 1/2 on [0, 1); v = {0, 0, 1}: CDF 2/3 on [0, 1) -> W1 = 1/6.
    assert wasserstein_1d(np.array([0.0, 1.0]), np.array([0.0, 0.0, 1.0])) == pytest.approx(1 / 6, abs=1e-15)
    # moving half the mass of {0, 0} to 1 costs 1/2
    assert wasserstein_1d(np.array([0.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(0.5, abs=1e-15)


def test_wasserstein_properties():
    rng = np.random.default_rng(5)
    u, v = rng.random(400), rng.random(400) ** 2
    expected = np.abs(np.sort(u) - np.sort(v)).mean()  # equal sizes: quantile coupling
    assert wasserstein_1d(u, v) == pytest.approx(expected, rel=1e-12)
    assert wasserstein_1d(v, u) == pytest.approx(expected, rel=1e-12)
    assert wasserstein_1d(u, u + 0.25) == pytest.approx(0.25, rel=1e-12)
    assert wasserstein_1d(u, rng.permutation(u)) == 0.0
    # repeating every sample leaves the distribution, and the distance, unchanged
    assert wasserstein_1d(np.repeat(u, 3), v) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        wasserstein_1d(np.array([]), u)


def test_slice_flicker_by_hand():
    ref = np.zeros((4, 1, 2))
    pred = np.zeros((4, 1, 2))
    pred[:, 0, 0] = [0.1, 0.3, 0.3, 0.0]  # per-slice mean errors over both voxels: 0.05, 0.15, 0.15, 0
    assert slice_flicker(pred, ref) == pytest.approx((0.1 + 0.0 + 0.15) / 3, abs=1e-15)
    mask = np.ones(pred.shape, bool)
    mask[:, 0, 1] = False  # only the first voxel: means 0.1, 0.3, 0.3, 0
    assert slice_flicker(pred, ref, mask) == pytest.approx((0.2 + 0.0 + 0.3) / 3, abs=1e-15)
    mask[2] = False  # slice 2 empty: only the pair (0, 1) remains
    assert slice_flicker(pred, ref, mask) == pytest.approx(0.2, abs=1e-15)
    # the same volume along another axis
    assert slice_flicker(np.moveaxis(pred, 0, 2), np.moveaxis(ref, 0, 2), axis=2) == pytest.approx(
        (0.1 + 0.0 + 0.15) / 3, abs=1e-15
    )
    # a constant bias does not flicker
    assert slice_flicker(ref + 0.2, ref) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="neighbouring slices"):
        slice_flicker(
            pred, ref, np.eye(4, 2, dtype=bool)[:, None, :] & np.array([True, False, False, False])[:, None, None]
        )


def test_z_gradient_ratio_by_hand():
    ref = np.array([0.0, 1.0, 1.0, 3.0]).reshape(4, 1, 1) * np.ones((4, 1, 2))
    ref[:, 0, 1] *= 2  # second column 0, 2, 2, 6
    error = np.array([0.1, 0.0, 0.2, 0.2])  # differences -0.1, 0.2, 0 in both columns
    pred = ref + error.reshape(4, 1, 1)
    # error energy 2 * (0.01 + 0.04) = 0.1; reference energy (1 + 0 + 4) + (4 + 0 + 16) = 25
    assert z_gradient_ratio(pred, ref) == pytest.approx(0.1 / 25, rel=1e-12)
    mask = np.ones(ref.shape, bool)
    mask[3, 0, 0] = False  # drops the pair (2, 3) of the first column: error energy still 0.1, reference 1 + 20
    assert z_gradient_ratio(pred, ref, mask) == pytest.approx(0.1 / 21, rel=1e-12)
    assert z_gradient_ratio(np.swapaxes(pred, 0, 2), np.swapaxes(ref, 0, 2), axis=2) == pytest.approx(
        0.1 / 25, rel=1e-12
    )
    assert z_gradient_ratio(ref + 0.3, ref) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="undefined"):
        z_gradient_ratio(pred, np.ones_like(ref))


def test_to_unit_range_modes():
    rng = np.random.default_rng(6)
    unit = rng.random((4, 5, 6))
    kept, rescaled = to_unit_range(unit, mode="auto")
    assert not rescaled and np.array_equal(kept, unit)
    raw = unit * 800 + 100
    mask = rng.random(raw.shape) > 0.4
    out, rescaled = to_unit_range(raw, mask, mode="auto")
    lo, hi = np.percentile(raw[mask], [0.5, 99.5])
    assert rescaled
    np.testing.assert_allclose(out, np.clip((raw - lo) / (hi - lo), 0, 1), rtol=1e-12, atol=1e-15)
    forced, rescaled = to_unit_range(unit, mask, mode="robust")
    lo, hi = np.percentile(unit[mask], [0.5, 99.5])
    assert rescaled and np.allclose(forced, np.clip((unit - lo) / (hi - lo), 0, 1))
    same, rescaled = to_unit_range(raw, mode="none")
    assert not rescaled and np.array_equal(same, raw)
    with pytest.raises(ValueError, match="normalisation"):
        to_unit_range(raw, mode="minmax")


def test_evaluate_volumes_against_independent_computation():
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[0:10, 0:12, 0:11]
    ref_raw = 300 + 200 * np.sin(x / 3.0) * np.cos(y / 4.0) + 5 * z + 10 * rng.standard_normal(x.shape)
    mask = ((x - 5) ** 2 + (y - 6) ** 2 < 20) & (z > 0) & (z < 9)
    lo, hi = np.percentile(ref_raw[mask], [0.5, 99.5])
    ref01 = np.clip((ref_raw - lo) / (hi - lo), 0, 1)
    pred = np.clip(ref01 + 0.05 * rng.standard_normal(x.shape) + 0.01 * z, 0, 1)  # already in [0, 1]: kept

    result = evaluate_volumes(pred, ref_raw, mask)
    p0, r0 = np.where(mask, pred, 0.0), np.where(mask, ref01, 0.0)
    e, r = (p0 - r0)[mask], r0[mask]
    assert set(result) == {*metrics.METRIC_NAMES, "voxels"} and result["voxels"] == mask.sum()
    assert result["mae"] == pytest.approx(np.abs(e).mean(), rel=1e-12)
    assert result["psnr"] == pytest.approx(10 * np.log10(1 / np.mean(e**2)), rel=1e-12)
    assert result["nrmse"] == pytest.approx(np.sqrt(np.mean(e**2)) / (r.max() - r.min()), rel=1e-12)
    ssim_expected = _ssim_brute_force(p0, r0)  # arrays are (z, y, x): slices along axis 0
    assert result["ssim"] == pytest.approx(ssim_expected[mask].mean(), rel=1e-10)
    # flicker: mean |e_{k+1} - e_k| of per-slice mean errors, over neighbouring slices both in the mask
    err = p0 - r0
    slice_means = [err[k][mask[k]].mean() if mask[k].any() else None for k in range(mask.shape[0])]
    steps = [abs(b - a) for a, b in itertools.pairwise(slice_means) if a is not None and b is not None]
    assert len(steps) == 7
    assert result["flicker"] == pytest.approx(sum(steps) / len(steps), rel=1e-10)
    # z-gradient ratio: squared slice-to-slice differences of the error over the reference's,
    # over voxel pairs (k, k+1) both in the mask
    both = mask[1:] & mask[:-1]
    energy_err = ((err[1:] - err[:-1])[both] ** 2).sum()
    energy_ref = ((r0[1:] - r0[:-1])[both] ** 2).sum()
    assert result["z_gradient_ratio"] == pytest.approx(energy_err / energy_ref, rel=1e-10)
    assert result["wasserstein"] == pytest.approx(np.abs(np.sort(p0[mask]) - np.sort(r)).mean(), rel=1e-12)

    whole = evaluate_volumes(pred, ref_raw, mask, whole_volume=True)
    assert whole["voxels"] == mask.size
    assert whole["mae"] == pytest.approx(np.abs(p0 - r0).mean(), rel=1e-12)
    assert whole["ssim"] == pytest.approx(ssim_expected.mean(), rel=1e-10)
    assert whole["psnr"] > result["psnr"]  # the zero background agrees everywhere

    # the flicker sees the slice-wise drift of the error; a pure-noise error of the same size less so
    drifting = evaluate_volumes(np.clip(ref01 + 0.05 * (z % 2), 0, 1), ref01, mask)
    steady = evaluate_volumes(np.clip(ref01 + 0.05, 0, 1), ref01, mask)
    assert drifting["flicker"] > 10 * steady["flicker"]
    assert drifting["z_gradient_ratio"] > 10 * steady["z_gradient_ratio"]
