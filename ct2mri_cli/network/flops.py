"""The cost of a network: parameters and FLOPs of one window's forward pass."""

from __future__ import annotations

import torch
from torch import nn

from .unet import UNet, UNetConfig


def forward_flops(config: UNetConfig, height: int, width: int) -> int:
    """FLOPs (2 per multiply-add) of one window's forward pass: convolutions, linear layers and
    attention products, the work a perfect kernel could not skip.  Counted on the meta device,
    so even the released network costs no memory or time."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        network = UNet(config).eval()
        x = torch.zeros(1, config.in_channels, height, width)
        t = torch.zeros(1, dtype=torch.long)
        style = torch.zeros(1, config.style_tokens, config.style_dim)
    counter = FlopCounterMode(display=False)
    # The math backend spells attention out as matrix products, which the counter sees.
    with counter, sdpa_kernel(SDPBackend.MATH), torch.inference_mode():
        network(x, t, style)
    return int(counter.get_total_flops())


def count_parameters(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())
