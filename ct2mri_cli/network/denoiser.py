"""A U-Net wrapped as the ``denoiser(x_t, y, t, style) -> x_t - x0`` that samplers call."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .unet import UNet


def network_denoiser(
    network: UNet,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Wrap a U-Net as ``denoiser(x_t, y, t, style) -> x_t - x0`` for :func:`ct2mri_cli.diffusion.sampler.sample_volume`.

    ``autocast_dtype`` (e.g. ``torch.bfloat16`` on CUDA) runs the network under autocast; the
    result is always float32.  ``channels_last`` feeds NHWC tensors (faster convolutions on GPUs).
    """
    network.eval()
    if channels_last:
        network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # accepted, not in the stubs

    @torch.inference_mode()
    def denoise(x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x_t, y], dim=1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if autocast_dtype is None:
            return network(x, t, style).float()
        with torch.autocast(device_type=x.device.type, dtype=autocast_dtype):
            return network(x, t, style).float()

    return denoise
