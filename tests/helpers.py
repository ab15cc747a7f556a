"""Small shared builders for tests: tiny networks with non-trivial weights."""

from __future__ import annotations

import torch

from ct2mri_cli.network import PRESETS, UNet


def tiny_network(seed: int = 0) -> UNet:
    """The tiny preset with every parameter randomised (zero-initialised layers would hide bugs)."""
    torch.manual_seed(seed)
    net = UNet(PRESETS["tiny"])
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    return net.eval()
