"""Exponential moving average of a network's weights (the weights that get exported)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..network.unet import UNet


class EMA:
    """``ema <- decay * ema + (1 - decay) * weights`` on every update; a copy before ``start``."""

    def __init__(self, network: UNet, decay: float, start: int = 0) -> None:
        self.decay = decay
        self.start = start
        self.model = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module, step: int) -> None:
        """Fold the current weights in; ``step`` is the number of optimiser steps taken so far."""
        ema_params: list[torch.Tensor] = list(self.model.parameters())
        params: list[torch.Tensor] = [p.detach() for p in network.parameters()]
        if step <= self.start:
            torch._foreach_copy_(ema_params, params)
        else:
            torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        for ema_buffer, buffer in zip(self.model.buffers(), network.buffers()):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)
