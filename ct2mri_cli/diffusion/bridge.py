"""Brownian-bridge maths: schedule, forward process, training target and loss, reverse steps.

x0 is the MRI, y the CT, both in [-1, 1].  ``x_t = (1 - m_t) x0 + m_t y + sqrt(delta_t) eps`` and
the network predicts ``x_t - x0`` (the "grad" objective), so ``x0_hat = x_t - prediction``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..settings import SettingsMixin


@dataclass(frozen=True)
class BridgeConfig(SettingsMixin):
    """Settings of the bridge; stored in weights files so sampling matches training."""

    _what = "bridge"

    num_timesteps: int = 1000
    m_min: float = 0.001
    m_max: float = 0.999
    variance_scale: float = 1.0  # the paper's s in delta_t = 2 s (m_t - m_t^2)


class BridgeSchedule:
    """The per-time-step coefficients on the full T-step grid, in float64 for exact arithmetic."""

    def __init__(self, config: BridgeConfig | None = None) -> None:
        self.config = config or BridgeConfig()
        c = self.config
        self.m = torch.linspace(c.m_min, c.m_max, c.num_timesteps, dtype=torch.float64)
        self.delta = 2.0 * c.variance_scale * (self.m - self.m**2)
        m_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.m[:-1]])
        delta_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.delta[:-1]])
        # Variance of q(x_t | x_{t-1}, y); at t = 0 it is delta_0 itself.
        self.delta_step = self.delta - delta_prev * ((1.0 - self.m) / (1.0 - m_prev)) ** 2

    @property
    def num_timesteps(self) -> int:
        return self.config.num_timesteps

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Gather ``values[t]`` and shape it to broadcast over ``like`` (B, ...)."""
        out = values.to(like.device)[t.to(like.device)].to(like.dtype)
        return out.reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward sample ``x_t`` of Eq. 1 for a batch of time steps ``t`` (B,)."""
        m = self._at(self.m, t, x0)
        return (1.0 - m) * x0 + m * y + self._at(self.delta, t, x0).sqrt() * noise

    def target(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Training target ``x_t - x0 = m_t (y - x0) + sqrt(delta_t) eps``."""
        return self._at(self.m, t, x0) * (y - x0) + self._at(self.delta, t, x0).sqrt() * noise

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """The paper's c_eps,t of Eq. 2: the weight of ``x_t - x0`` in the posterior mean.

        Normalised so the weights average to one over the grid, which keeps the weighted L2 loss on
        the same scale as the plain one.
        """
        m_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.m[:-1]])
        # Posterior mean mu = c_x x_t + c_y y + c_eps (m_t (y - x0) + sqrt(delta_t) eps) with
        # c_eps = -(1 - m_{t-1}) delta_{t|t-1} / delta_t  (the weight of the predicted direction).
        c_eps = (1.0 - m_prev) * self.delta_step / self.delta
        c_eps = c_eps / c_eps.mean()
        return c_eps[t.cpu()].to(torch.float32)

    def sample_posterior(
        self,
        x_t: torch.Tensor,
        x0_hat: torch.Tensor,
        y: torch.Tensor,
        t: int,
        n: int,
    ) -> torch.Tensor:
        """Deterministic (eta = 0) reverse step from time ``t`` to the earlier time ``n``."""
        m_t, m_n = float(self.m[t]), float(self.m[n])
        d_t, d_n = float(self.delta[t]), float(self.delta[n])
        sigma2 = (d_t - d_n * (1.0 - m_t) ** 2 / (1.0 - m_n) ** 2) * d_n / d_t
        c = max((d_n - sigma2) / d_t, 0.0) ** 0.5
        return (1.0 - m_n) * x0_hat + m_n * y + c * (x_t - (1.0 - m_t) * x0_hat - m_t * y)

    def score(self, x_n: torch.Tensor, y: torch.Tensor, predicted: torch.Tensor, n: int) -> torch.Tensor:
        """The score of ``x_n`` (Eq. 6) from the predicted ``x_n - x0``: the gradient of the log
        density of q(x_n | x0, y) with x0 taken from the prediction."""
        m_n = float(self.m[n])
        return -(m_n * (x_n - y) + (1.0 - m_n) * predicted) / float(self.delta[n])


def to_bridge_range(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] intensities (preprocessing's) to the bridge's [-1, 1]."""
    return x01 * 2.0 - 1.0


def from_bridge_range(x: torch.Tensor) -> torch.Tensor:
    """The bridge's [-1, 1] back to [0, 1], clipped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def sampling_timesteps(num_steps: int, num_timesteps: int = 1000) -> list[int]:
    """The released implementation's S sampling time points, from T-1 down to 0.

    ``arange(T-1, 1, -(T-1)/(S-2))`` truncated to integers, then ``1, 0``; for S = 2 just
    ``T-1, 0``.
    """
    if num_steps < 2:
        raise ValueError(f"the number of sampling steps must be at least 2, got {num_steps}")
    last = num_timesteps - 1
    if num_steps == 2:
        return [last, 0]
    stride = last / (num_steps - 2)
    mids = torch.arange(last, 1, -stride, dtype=torch.float64).long().tolist()
    return [*mids, 1, 0]


def bridge_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    t: torch.Tensor,
    schedule: BridgeSchedule,
    kind: str = "l1",
    pixel_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss between the network's prediction and the bridge target.

    ``"l1"`` (the released code's default) or ``"weighted_l2"`` (the paper's Eq. 2/3, each sample's
    squared error weighted by c_eps,t).  ``pixel_weights`` (broadcastable to the prediction) turn
    each sample's mean error into a weighted mean, so the loss keeps its scale whatever the weights.
    """
    if kind == "l1":
        error = (prediction - target).abs()
    elif kind == "weighted_l2":
        error = (prediction - target).pow(2)
    else:
        raise ValueError(f"unknown loss {kind!r} (expected 'l1' or 'weighted_l2')")
    if pixel_weights is None:
        if kind == "l1":
            return error.mean()
        per_sample = error.flatten(1).mean(dim=1)
    else:
        weights = pixel_weights.to(error).expand_as(error).flatten(1)
        per_sample = (weights * error.flatten(1)).sum(dim=1) / weights.sum(dim=1)
    if kind == "weighted_l2":
        per_sample = schedule.loss_weight(t).to(per_sample) * per_sample
    return per_sample.mean()
