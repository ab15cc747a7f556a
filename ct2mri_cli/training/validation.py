"""Validation during training: translate held-out CT volumes with ISTA and score them in the brain.

Each held-out case is sampled with its own style key (the key it would be trained with), by
the EMA network, at the configured small number of steps; PSNR, SSIM and MAE are computed on
[0, 1] intensities inside the case's brain mask (the whole volume if the mask is empty).
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import torch

from ..evaluation.metrics import mae, psnr, ssim
from ..network.unet import UNet, network_denoiser
from ..diffusion.sampler import sample_volume
from .config import TrainConfig
from .data import CaseVolumes


def translate_case(
    network: UNet,
    case: CaseVolumes,
    config: TrainConfig,
    device: torch.device,
    autocast_dtype: Optional[torch.dtype] = None,
) -> np.ndarray:
    """The case's synthetic MRI (Z, H, W) in [0, 1]."""
    ct = torch.from_numpy(case.ct).to(device=device, dtype=torch.float32) * 2.0 - 1.0
    out = sample_volume(
        network_denoiser(network, autocast_dtype=autocast_dtype),
        ct,
        case.key.to(device),
        steps=config.val_steps,
        corrections=config.val_corrections,
        step_size=config.val_step_size,
        mode="ista",
        batch_size=config.val_batch_size or None,
        correction_norm=config.val_correction_norm,
    )
    return ((out.float().cpu() + 1.0) / 2.0).clamp_(0.0, 1.0).numpy()


def validate(
    network: UNet,
    cases: list[CaseVolumes],
    config: TrainConfig,
    device: torch.device,
    autocast_dtype: Optional[torch.dtype] = None,
) -> dict[str, Any]:
    """Scores per case and their means: ``{"psnr", "ssim", "mae", "seconds", "cases": [...]}``."""
    start = time.perf_counter()
    per_case = []
    for case in cases:
        pred = translate_case(network, case, config, device, autocast_dtype)
        mask = case.mask if case.mask.any() else None
        per_case.append(
            {
                "case": case.name,
                "psnr": psnr(pred, case.mri, mask),
                "ssim": ssim(pred, case.mri, mask),
                "mae": mae(pred, case.mri, mask),
            }
        )
    summary: dict[str, Any] = {k: float(np.mean([c[k] for c in per_case])) for k in ("psnr", "ssim", "mae")}
    summary["seconds"] = time.perf_counter() - start
    summary["cases"] = per_case
    return summary
