"""The multi-slice U-Net, its presets, the denoiser wrapper samplers call, and its cost."""

from .denoiser import network_denoiser
from .flops import count_parameters, forward_flops
from .unet import PRESETS, UNet, UNetConfig

__all__ = ["PRESETS", "UNet", "UNetConfig", "count_parameters", "forward_flops", "network_denoiser"]
