"""Sampling a whole CT on the model grid: [0, 1] slices in, the synthetic MRI's [0, 1] slices out.

The one model-space path of ``translate``, training validation and the benchmarks: the CT goes
to the bridge's [-1, 1] range, :func:`~ct2mri_cli.diffusion.sampler.sample_volume` samples it
with a model's :class:`~ct2mri_cli.settings.SamplingConfig`, and the result comes back to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..settings import SamplingConfig
from .bridge import BridgeSchedule, from_bridge_range, to_bridge_range
from .sampler import Denoiser, sample_volume


def sample_model_space(
    denoiser: Denoiser,
    ct01: np.ndarray,
    style: torch.Tensor,
    sampling: SamplingConfig,
    device: torch.device,
    schedule: BridgeSchedule,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_spread: Callable[[int, torch.Tensor], None] | None = None,
) -> np.ndarray:
    """A CT on the model grid, (Z, H, W) in [0, 1], to its synthetic MRI, (Z, H, W) float32 in [0, 1].

    ``on_spread`` hears the windows' disagreement at each step (see ``sample_volume``).
    """
    ct = to_bridge_range(torch.from_numpy(np.asarray(ct01, dtype=np.float32)).to(device))
    out = sample_volume(
        denoiser,
        ct,
        style.to(device),
        steps=sampling.steps,
        corrections=sampling.corrections,
        step_size=sampling.step_size,
        mode=sampling.mode,  # type: ignore[arg-type]
        correction_norm=sampling.correction_norm,
        correction_cap=sampling.correction_cap,
        batch_size=batch_size,
        schedule=schedule,
        progress=progress,
        on_spread=on_spread,
    )
    return from_bridge_range(out.float().cpu()).numpy().astype(np.float32)
