"""Validation during training: translate held-out CT volumes with ISTA and score them in the brain.

Each held-out case is sampled with its own style key (the key it would be trained with), by
the EMA network, with the configured validation sampler (the same model-space path as
``translate``); PSNR, SSIM and MAE are computed on [0, 1] intensities inside the case's brain
mask (the whole volume if the mask is empty).
"""

from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
import torch

from ..diffusion.bridge import BridgeSchedule
from ..evaluation.metrics import mae, psnr, ssim
from ..inference.translator import sample_model_space
from ..network import UNet, network_denoiser
from .config import TrainConfig
from .data import CaseVolumes


def validate_cases(
    network: UNet,
    cases: list[CaseVolumes],
    config: TrainConfig,
    device: torch.device,
    schedule: BridgeSchedule,
    autocast_dtype: Optional[torch.dtype] = None,
) -> dict[str, Any]:
    """Scores per case and their means: ``{"psnr", "ssim", "mae", "seconds", "cases": [...]}``."""
    start = time.perf_counter()
    denoiser = network_denoiser(network, autocast_dtype=autocast_dtype)
    sampling = config.validation_sampling()
    per_case = []
    for case in cases:
        pred = sample_model_space(
            denoiser, case.ct, case.key, sampling, device, schedule, batch_size=config.val_batch_size or None
        )
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
