import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.bridge import (
    BridgeConfig,
    BridgeSchedule,
    bridge_loss,
    sampling_timesteps,
)


@pytest.fixture(scope="module")
def schedule():
    return BridgeSchedule()


def test_schedule_matches_independent_numpy(schedule):
    m = np.linspace(0.001, 0.999, 1000)
    delta = 2 * (m - m**2)
    np.testing.assert_allclose(schedule.m.numpy(), m, rtol=0, atol=1e-15)
    np.testing.assert_allclose(schedule.delta.numpy(), delta, rtol=0, atol=1e-15)
    for t in (1, 2, 500, 999):
        expected = delta[t] - delta[t - 1] * (1 - m[t]) ** 2 / (1 - m[t - 1]) ** 2
        assert schedule.delta_step[t].item() == pytest.approx(expected, rel=1e-12)
    assert schedule.delta_step[0].item() == pytest.approx(delta[0], rel=1e-12)


def test_variance_scale_multiplies_delta():
    s2 = BridgeSchedule(BridgeConfig(variance_scale=2.0))
    s1 = BridgeSchedule()
    torch.testing.assert_close(s2.delta, 2 * s1.delta)


def test_forward_sample_and_target_are_consistent(schedule):
    g = torch.Generator().manual_seed(0)
    x0, y, eps = (torch.rand(4, 3, 8, 8, generator=g) * 2 - 1 for _ in range(3))
    t = torch.tensor([0, 10, 500, 999])
    x_t = schedule.q_sample(x0, y, t, eps)
    target = schedule.target(x0, y, t, eps)
    torch.testing.assert_close(x_t - target, x0, atol=1e-6, rtol=0)
    m = torch.linspace(0.001, 0.999, 1000)[t].view(-1, 1, 1, 1)
    expected = (1 - m) * x0 + m * y + torch.sqrt(2 * (m - m * m)) * eps
    torch.testing.assert_close(x_t, expected, atol=1e-6, rtol=0)


def test_sampling_timesteps_released_rule():
    assert sampling_timesteps(2) == [999, 0]
    assert sampling_timesteps(3) == [999, 1, 0]
    mids = np.arange(999, 1, -999 / 8).astype(int).tolist()
    assert sampling_timesteps(10) == [*mids, 1, 0]
    for s in range(2, 301):
        times = sampling_timesteps(s)
        assert len(times) == s
        assert times[0] == 999 and times[-1] == 0
        assert all(a > b for a, b in zip(times, times[1:]))
    with pytest.raises(ValueError):
        sampling_timesteps(1)


def test_posterior_step_keeps_the_bridge_mean(schedule):
    """With the true x0 and x_t on the bridge mean, one step lands on the bridge mean at n."""
    g = torch.Generator().manual_seed(1)
    x0, y = torch.rand(2, 8, 8, generator=g, dtype=torch.float64).unbind(0)
    t, n = 700, 350
    m = schedule.m
    x_t = (1 - m[t]) * x0 + m[t] * y
    x_n = schedule.sample_posterior(x_t, x0, y, t, n)
    torch.testing.assert_close(x_n, (1 - m[n]) * x0 + m[n] * y)


def test_posterior_step_coefficient(schedule):
    m = np.linspace(0.001, 0.999, 1000)
    d = 2 * (m - m**2)
    t, n = 999, 874
    sigma2 = (d[t] - d[n] * (1 - m[t]) ** 2 / (1 - m[n]) ** 2) * d[n] / d[t]
    c = np.sqrt((d[n] - sigma2) / d[t])
    x0 = torch.zeros(1, dtype=torch.float64)
    y = torch.zeros(1, dtype=torch.float64)
    x_t = torch.ones(1, dtype=torch.float64)  # residual 1 off the mean
    assert schedule.sample_posterior(x_t, x0, y, t, n).item() == pytest.approx(c, rel=1e-12)


def test_losses(schedule):
    g = torch.Generator().manual_seed(2)
    pred, target = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    t = torch.tensor([1, 400, 998])
    assert bridge_loss(pred, target, t, schedule).item() == pytest.approx((pred - target).abs().mean().item())
    m = np.linspace(0.001, 0.999, 1000)
    d = 2 * (m - m**2)
    m_prev = np.concatenate([[0], m[:-1]])
    d_prev = np.concatenate([[0], d[:-1]])
    c = (1 - m_prev) * (d - d_prev * (1 - m) ** 2 / (1 - m_prev) ** 2) / d
    w = c[t.numpy()] / c.mean()
    per_sample = ((pred - target) ** 2).flatten(1).mean(1).numpy()
    expected = float(np.mean(w * per_sample))
    assert bridge_loss(pred, target, t, schedule, "weighted_l2").item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        bridge_loss(pred, target, t, schedule, "l3")


def test_the_score_is_the_gradient_of_the_bridge_log_density():
    """Eq. 6: the score of x_n with x0 read off the prediction x_n - x0 equals the gradient of
    log q(x_n | x0, y) = -|x_n - (1 - m_n) x0 - m_n y|^2 / (2 delta_n), taken here by autograd."""
    schedule = BridgeSchedule()
    g = torch.Generator().manual_seed(5)
    x0, y, x = (torch.rand(2, 6, 6, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(3))
    for n in (1, 250, 998):
        m, delta = schedule.m[n], schedule.delta[n]
        free = x.clone().requires_grad_()
        (-(free - (1 - m) * x0 - m * y).pow(2).sum() / (2 * delta)).backward()
        torch.testing.assert_close(schedule.score(x, y, x - x0, n), free.grad)


def test_pixel_weights_make_a_weighted_mean_per_sample(schedule):
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    weights = 1.0 + 4.0 * (torch.rand(2, 3, 4, 4, generator=g) > 0.7).float()
    t = torch.tensor([10, 700])
    error = (pred - target).abs().numpy().reshape(2, -1)
    w = weights.numpy().reshape(2, -1)
    expected = float(np.mean((w * error).sum(1) / w.sum(1)))
    assert bridge_loss(pred, target, t, schedule, "l1", weights).item() == pytest.approx(expected, rel=1e-6)
    # equal weights leave the loss as it was
    flat = torch.full_like(weights, 3.0)
    assert bridge_loss(pred, target, t, schedule, "l1", flat).item() == pytest.approx(
        bridge_loss(pred, target, t, schedule).item(), rel=1e-6
    )
    c = schedule.loss_weight(t).numpy()
    squared = ((pred - target) ** 2).numpy().reshape(2, -1)
    expected_l2 = float(np.mean(c * (w * squared).sum(1) / w.sum(1)))
    assert bridge_loss(pred, target, t, schedule, "weighted_l2", weights).item() == pytest.approx(expected_l2, rel=1e-5)
