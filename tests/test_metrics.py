import math

import numpy as np
import pytest
import torch

from ct2mri_cli.metrics import gaussian_taps, mae, mse, nrmse, psnr, ssim, ssim_map


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
