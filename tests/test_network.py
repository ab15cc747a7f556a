import json
from dataclasses import replace

import pytest
import torch

from ct2mri_cli.network import (
    PRESETS,
    UNet,
    UNetConfig,
    count_parameters,
    forward_flops,
    network_denoiser,
)
from tests.helpers import tiny_network


def test_released_preset_parameter_count():
    with torch.device("meta"):
        net = UNet(PRESETS["released"])
    assert abs(count_parameters(net) - 254e6) / 254e6 < 0.05
    cfg = PRESETS["released"]
    assert (cfg.in_channels, cfg.out_channels, cfg.base_channels, cfg.channel_mult) == (6, 3, 128, (1, 4, 8))
    assert cfg.num_res_blocks == 2 and cfg.head_channels == 64 and cfg.use_scale_shift_norm


def test_small_preset_forward_on_cpu():
    net = UNet(PRESETS["small"]).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 6, 64, 64), torch.tensor([0, 999]), torch.randn(2, 3, 128))
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()


def test_output_depends_on_every_input():
    net = tiny_network()
    g = torch.Generator().manual_seed(0)
    x, style = torch.randn(1, 6, 16, 16, generator=g), torch.randn(1, 3, 128, generator=g)
    t = torch.tensor([500])
    with torch.no_grad():
        base = net(x, t, style)
        assert not torch.allclose(base, net(x, torch.tensor([10]), style))
        assert not torch.allclose(base, net(x, t, style + 1))
        x2 = x.clone()
        x2[:, 4] += 1  # a CT channel
        assert not torch.allclose(base, net(x2, t, style))


def test_input_size_must_fit_the_downsampling():
    net = tiny_network()
    with pytest.raises(ValueError, match="multiple of 2"):
        net(torch.randn(1, 6, 15, 16), torch.tensor([1]), torch.randn(1, 3, 128))


def test_denoiser_wrapper_concatenates_xt_then_ct():
    net = tiny_network()
    g = torch.Generator().manual_seed(3)
    x_t, y, style = (
        torch.randn(2, 3, 16, 16, generator=g),
        torch.randn(2, 3, 16, 16, generator=g),
        torch.randn(2, 3, 128, generator=g),
    )
    t = torch.tensor([3, 900])
    denoise = network_denoiser(net)
    with torch.no_grad():
        expected = net(torch.cat([x_t, y], dim=1), t, style)
    torch.testing.assert_close(denoise(x_t, y, t, style), expected)
    cl = network_denoiser(tiny_network(), channels_last=True)
    torch.testing.assert_close(cl(x_t, y, t, style), expected, atol=1e-5, rtol=1e-5)


def test_config_round_trips_through_json():
    for cfg in PRESETS.values():
        assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown network settings"):
        UNetConfig.from_dict({"width": 3})


def test_attention_levels_add_transformer_blocks():
    cfg = UNetConfig(
        base_channels=16, channel_mult=(1, 2), num_res_blocks=1, head_channels=16, norm_groups=8, attention_levels=(1,)
    )
    plain = UNetConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, head_channels=16, norm_groups=8)
    assert count_parameters(UNet(cfg)) > count_parameters(UNet(plain))
    out = UNet(cfg)(torch.randn(1, 6, 16, 16), torch.tensor([5]), torch.randn(1, 3, 128))
    assert out.shape == (1, 3, 16, 16)


def _hooked_flops(config, height, width):
    """FLOPs from layer shapes seen by forward hooks: an independent count for forward_flops."""
    from ct2mri_cli.network.unet import Attention

    net = UNet(config).eval()
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += 2 * output.numel() * (module.in_channels // module.groups) * k

    def linear(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_features

    def attention(module, args, kwargs, output):
        nonlocal total
        x = args[0]
        context = kwargs.get("context", args[1] if len(args) > 1 else None)
        b, n, d = x.shape
        m = n if context is None else context.shape[1]
        total += 2 * 2 * b * n * m * d  # q k^T and attention x v

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(conv)
        elif isinstance(module, torch.nn.Linear):
            module.register_forward_hook(linear)
        elif isinstance(module, Attention):
            module.register_forward_hook(attention, with_kwargs=True)
    with torch.no_grad():
        net(
            torch.zeros(1, config.in_channels, height, width),
            torch.zeros(1, dtype=torch.long),
            torch.zeros(1, config.style_tokens, config.style_dim),
        )
    return total


@pytest.mark.parametrize("config", [PRESETS["tiny"], replace(PRESETS["tiny"], attention_levels=(1,))])
def test_forward_flops_matches_a_count_from_layer_shapes(config):
    assert forward_flops(config, 32, 24) == _hooked_flops(config, 32, 24)


@pytest.mark.parametrize("self_attention", [True, False])
def test_only_self_attention_mixes_positions_in_a_transformer(self_attention):
    from ct2mri_cli.network.unet import TransformerBlock

    cfg = replace(PRESETS["tiny"], self_attention=self_attention)
    block = TransformerBlock(32, cfg).eval()
    block.norm = torch.nn.Identity()  # the group norm's statistics span the slice; the rest is per position
    torch.nn.init.normal_(block.proj_out.weight)
    g = torch.Generator().manual_seed(1)
    x, style = torch.randn(1, 32, 4, 4, generator=g), torch.randn(1, 3, 128, generator=g)
    moved = x.clone()
    moved[..., 0, 0] += 1.0
    with torch.no_grad():
        changed = (block(moved, style) - block(x, style)).abs().amax(dim=1)[0] > 1e-6
    assert changed[0, 0]
    assert changed.sum() == (16 if self_attention else 1)


def test_dropping_self_attention_drops_exactly_its_parameters():
    full, local = UNet(PRESETS["demo"]), UNet(replace(PRESETS["demo"], self_attention=False))
    self_attention = sum(p.numel() for name, p in full.named_parameters() if ".self_attn." in name or ".norm1." in name)
    assert self_attention > 0 and count_parameters(full) - count_parameters(local) == self_attention
    assert not any("self_attn" in name for name in local.state_dict())
    config = replace(PRESETS["demo"], self_attention=False)
    assert UNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert UNetConfig.from_dict(
        {k: v for k, v in PRESETS["demo"].to_dict().items() if k != "self_attention"}
    ).self_attention
