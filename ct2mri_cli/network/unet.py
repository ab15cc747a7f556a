"""The multi-slice 2D U-Net: (x_t window, CT window, time step, style key) -> predicted x_t - x0.

The layout follows the released network: a time-conditioned U-Net with scale-shift normalised
residual blocks, residual-block down/up-sampling, and a bottleneck of residual block /
transformer block (self-attention, cross-attention to the style key's 3 tokens, GEGLU
feed-forward) / residual block.  Attention runs through ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import SettingsMixin


@dataclass(frozen=True)
class UNetConfig(SettingsMixin):
    """Architecture of the U-Net; travels with the weights (see :mod:`ct2mri_cli.weights`)."""

    _what = "network"

    in_channels: int = 6  # x_t window (3 slices) + CT window (3 slices)
    out_channels: int = 3
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 4, 8)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = ()  # levels (0 = full resolution) with a transformer block
    head_channels: int = 64
    transformer_depth: int = 1
    # False drops the transformers' self-attention and keeps their cross-attention to the style
    # tokens: spatial context then comes from the convolutions alone (a more local network).
    self_attention: bool = True
    style_tokens: int = 3
    style_dim: int = 128
    norm_groups: int = 32
    dropout: float = 0.0
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True

    @property
    def downsampling_factor(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.channel_mult) - 1)


PRESETS: dict[str, UNetConfig] = {
    # The authors' released network: about 254 M parameters.
    "released": UNetConfig(),
    # 3.3 M parameters: 4x the demo model's FLOPs, still trainable on a CPU at 2 mm.
    "small": UNetConfig(base_channels=32, channel_mult=(1, 2, 4), num_res_blocks=1, head_channels=32),
    # The bundled CPU model (2 mm grid): translates a head CT on a 2-core CPU in about 25 s.
    "demo": UNetConfig(base_channels=16, channel_mult=(1, 2, 4), num_res_blocks=1, head_channels=32, norm_groups=8),
    # For tests.
    "tiny": UNetConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, head_channels=16, norm_groups=8),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer time steps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-6)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding; optionally halves or doubles resolution."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        cfg: UNetConfig,
        resample: str | None = None,
    ) -> None:
        super().__init__()
        self.resample = resample
        self.scale_shift = cfg.use_scale_shift_norm
        self.norm_in = _norm(in_ch, cfg.norm_groups)
        self.conv_in = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch if self.scale_shift else out_ch)
        self.norm_out = _norm(out_ch, cfg.norm_groups)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv_out = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm_in(x))
        h = self.conv_in(self._resample(h))
        x = self._resample(x)
        e = self.emb(F.silu(emb))[:, :, None, None].to(h.dtype)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm_out(h) * (1 + scale) + shift
        else:
            h = self.norm_out(h + e)
        h = self.conv_out(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention`` (self or cross)."""

    def __init__(self, dim: int, context_dim: int | None, head_channels: int) -> None:
        super().__init__()
        self.heads = max(dim // head_channels, 1)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        context = x if context is None else context
        split = lambda z: z.reshape(b, z.shape[1], self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    """Gated-GELU feed-forward: Linear(d, 2*4d) -> a * gelu(g) -> Linear(4d, d)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * mult * dim)
        self.out = nn.Linear(mult * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(a * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Spatial transformer: self-attention, cross-attention to the style tokens, feed-forward."""

    def __init__(self, channels: int, cfg: UNetConfig) -> None:
        super().__init__()
        self.norm = _norm(channels, cfg.norm_groups)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.layers = nn.ModuleList()
        for _ in range(cfg.transformer_depth):
            layer = nn.ModuleDict()
            if cfg.self_attention:
                layer["norm1"] = nn.LayerNorm(channels)
                layer["self_attn"] = Attention(channels, None, cfg.head_channels)
            layer["norm2"] = nn.LayerNorm(channels)
            layer["cross_attn"] = Attention(channels, cfg.style_dim, cfg.head_channels)
            layer["norm3"] = nn.LayerNorm(channels)
            layer["ff"] = GEGLU(channels)
            self.layers.append(layer)
        self.proj_out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        style = style.to(tokens.dtype)
        for item in self.layers:
            layer = cast(nn.ModuleDict, item)
            if "self_attn" in layer:
                tokens = tokens + layer["self_attn"](layer["norm1"](tokens))
            tokens = tokens + layer["cross_attn"](layer["norm2"](tokens), style)
            tokens = tokens + layer["ff"](layer["norm3"](tokens))
        out = tokens.transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class _Stage(nn.Module):
    """A res block optionally followed by a transformer block (one U-Net "block")."""

    def __init__(self, res: ResBlock, attn: TransformerBlock | None = None) -> None:
        super().__init__()
        self.res = res
        self.attn = attn

    def forward(self, x: torch.Tensor, emb: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x, style) if self.attn is not None else x


class UNet(nn.Module):
    """``forward(x (B, 6, H, W), t (B,), style (B, 3, 128)) -> (B, 3, H, W)``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        base = cfg.base_channels
        emb_dim = 4 * base
        self.time_embed = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        ch = base
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                out = mult * base
                attn = TransformerBlock(out, cfg) if level in cfg.attention_levels else None
                self.down.append(_Stage(ResBlock(ch, out, emb_dim, cfg), attn))
                ch = out
                skip_channels.append(ch)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(_Stage(self._downsample(ch, emb_dim)))
                skip_channels.append(ch)

        self.mid_res1 = ResBlock(ch, ch, emb_dim, cfg)
        self.mid_attn = TransformerBlock(ch, cfg)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, cfg)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                out = mult * base
                attn = TransformerBlock(out, cfg) if level in cfg.attention_levels else None
                stage: nn.Module = _Stage(ResBlock(ch + skip_channels.pop(), out, emb_dim, cfg), attn)
                ch = out
                if level > 0 and i == cfg.num_res_blocks:
                    stage = nn.ModuleList([stage, _Stage(self._upsample(ch, emb_dim))])
                self.up.append(stage)

        self.norm_out = _norm(ch, cfg.norm_groups)
        self.conv_out = _zero(nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    def _downsample(self, ch: int, emb_dim: int) -> ResBlock:
        if self.config.resblock_updown:
            return ResBlock(ch, ch, emb_dim, self.config, resample="down")
        raise NotImplementedError("only residual-block down-sampling is implemented")

    def _upsample(self, ch: int, emb_dim: int) -> ResBlock:
        if self.config.resblock_updown:
            return ResBlock(ch, ch, emb_dim, self.config, resample="up")
        raise NotImplementedError("only residual-block up-sampling is implemented")

    def forward(self, x: torch.Tensor, t: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        factor = self.config.downsampling_factor
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"input size {tuple(x.shape[-2:])} must be a multiple of {factor}")
        emb = self.time_embed(timestep_embedding(t, self.config.base_channels).to(x.dtype))
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb, style)
            skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb), style), emb)
        for stage in self.up:
            if isinstance(stage, nn.ModuleList):
                h = stage[0](torch.cat([h, skips.pop()], dim=1), emb, style)
                h = stage[1](h, emb, style)
            else:
                h = stage(torch.cat([h, skips.pop()], dim=1), emb, style)
        return self.conv_out(F.silu(self.norm_out(h)))
