"""The trust map: the windows' spread, the expected-error model and the case's check."""

import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.sampler import sample_volume, window_spread
from ct2mri_cli.inference import trust
from ct2mri_cli.inference.trust import SpreadAverage, expected_error, on_native_brain, summarise


def test_window_spread_is_the_deviation_of_each_slices_predictions():
    rng = np.random.default_rng(0)
    z = 5
    predictions = rng.normal(size=(z, 3, 4, 4))  # window k covers padded slices k, k+1, k+2
    counts = torch.tensor([1, 2, 3, 3, 3, 2, 1], dtype=torch.float32)
    spread = window_spread(torch.from_numpy(predictions).float(), counts).numpy()
    for s in range(1, z + 1):  # the real slices are padded 1..z
        seen = [predictions[k, s - k] for k in range(z) if 0 <= s - k < 3]
        np.testing.assert_allclose(spread[s - 1], np.std(seen, axis=0), atol=1e-5)


def test_the_sampler_reports_the_spread_of_every_step():
    def disagreeing(x_t, y, t, style):  # each window position predicts its slices differently
        offsets = torch.tensor([0.0, 0.1, 0.3]).view(1, 3, 1, 1)
        return torch.zeros_like(x_t) + offsets

    seen = []
    sample_volume(
        disagreeing,
        torch.zeros(4, 8, 8),
        torch.rand(3, 128),
        steps=3,
        corrections=0,
        mode="coprediction",
        on_spread=lambda t, s: seen.append((t, s.clone())),
    )
    assert [t for t, _ in seen] == [999, 1, 0]
    inner = seen[-1][1][1]  # a slice seen by all three windows: predictions x - 0, x - 0.1, x - 0.3
    np.testing.assert_allclose(inner.numpy(), np.std([0.0, 0.1, 0.3]), atol=1e-5)


def test_spread_average_is_in_image_units():
    average = SpreadAverage()
    average(10, torch.full((2, 2, 2), 0.2))
    average(0, torch.full((2, 2, 2), 0.4))
    np.testing.assert_allclose(average.mean01(), 0.15)  # mean 0.3 on the bridge's [-1, 1], half of it in [0, 1]


def test_expected_error_follows_its_terms():
    shape = (40, 40, 40)
    mask = np.zeros(shape, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    centre = (20, 20, 20)  # about 38 mm inside the rim: the rim term is below 1e-4
    spacing = 2.0
    flat = expected_error(np.full(shape, 0.1, np.float32), np.full(shape, 0.5, np.float32), mask, spacing)
    assert flat[centre] == pytest.approx(trust.INTERCEPT + trust.SPREAD * 0.1, abs=1e-4)
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32) * 0.01, shape).copy()  # 0.01 per voxel along W
    sloped = expected_error(np.zeros(shape, np.float32), ramp, mask, spacing)
    assert sloped[centre] == pytest.approx(trust.INTERCEPT + trust.EDGE_SHARPNESS * 0.01 / spacing, abs=1e-4)
    assert (flat[~mask] == 0).all()
    rim, inner = flat[1, 20, 20], flat[5, 20, 20]
    assert rim > inner > flat[centre]  # the rim is trusted least


def test_summary_and_check():
    error = np.zeros((4, 4, 4), np.float32)
    mask = np.zeros_like(error, bool)
    mask[:2] = True
    error[0] = 0.3
    error[1] = 0.05
    summary = summarise(error, mask)
    assert summary.mean_expected_error == pytest.approx(0.175) and summary.unsure_share == pytest.approx(0.5)
    check = summary.check()
    assert check.name == "trust" and check.verdict == "warning" and "50 %" in check.message
    error[0] = 0.1
    assert summarise(error, mask).check().verdict == "pass"


def test_brain_voxels_faded_by_the_way_back_get_the_rim_value_not_full_trust():
    carried = np.array([0.0, 0.02, 0.05, 0.3, 0.07, 0.9], dtype=np.float32)
    mask = np.array([True, True, True, True, True, False])
    rim_value = trust.INTERCEPT + trust.RIM
    np.testing.assert_allclose(on_native_brain(carried, mask), [rim_value, rim_value, 0.05, 0.3, 0.07, 0.0], rtol=1e-6)
