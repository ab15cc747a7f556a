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


def fast_weights(path, spacing_mm: float = 4.0, in_plane=(48, 40), steps: int = 3, seed: int = 0):
    """A weights file with a small random 3-level network that translates a head CT in seconds."""
    from ct2mri_cli.network import UNetConfig
    from ct2mri_cli.settings import PreprocessConfig, SamplingConfig
    from ct2mri_cli.weights import ModelBundle, save_weights

    torch.manual_seed(seed)
    cfg = UNetConfig(base_channels=8, channel_mult=(1, 2, 4), num_res_blocks=1, head_channels=8, norm_groups=8)
    net = UNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    key = torch.rand(3, 128, generator=torch.Generator().manual_seed(seed))
    bundle = ModelBundle(
        network=net,
        preprocess=PreprocessConfig(spacing_mm=spacing_mm, in_plane=tuple(in_plane)),
        sampling=SamplingConfig(steps=steps, corrections=1),
        default_style_key=key,
        provenance={"note": "random test network"},
    )
    save_weights(path, bundle)
    return path
