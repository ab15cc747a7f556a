"""Validation during training: translate held-out CT volumes with ISTA and score them in the brain.

Each held-out case is sampled with its own style key (the key it would be trained with), by
the EMA network, with the configured validation sampler (the same model-space path as
``translate``, and the exported model's default sampler); PSNR, SSIM and MAE are computed on
[0, 1] intensities inside the case's brain mask (the whole volume if the mask is empty).

A whole 1 mm volume costs far more than a few training steps on a CPU, so by default only a slab
of ``val_slices`` slices through the middle of each brain is translated: the cost of a validation
is fixed by the setting, not by the size of the held-out scans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..diffusion.bridge import BridgeSchedule
from ..diffusion.model_space import sample_model_space
from ..evaluation.metrics import mae, psnr, ssim
from ..network import UNet, network_denoiser
from .config import TrainConfig
from .data import CaseVolumes


def middle_slab(mask: np.ndarray, slices: int) -> slice:
    """``slices`` consecutive slice indices centred on the brain's centre of mass along Z
    (on the volume's middle when the mask is empty); all slices when ``slices`` is 0 or more
    than the volume holds."""
    depth = mask.shape[0]
    if slices <= 0 or slices >= depth:
        return slice(0, depth)
    area = mask.reshape(depth, -1).sum(axis=1).astype(np.float64)
    centre = float((area * np.arange(depth)).sum() / area.sum()) if area.sum() > 0 else (depth - 1) / 2
    start = int(round(centre - (slices - 1) / 2))
    start = min(max(start, 0), depth - slices)
    return slice(start, start + slices)


def validation_slices(cases: list[CaseVolumes], slices: int) -> int:
    """How many held-out slices one validation translates."""
    return sum(len(range(*middle_slab(case.mask, slices).indices(case.mask.shape[0]))) for case in cases)


def validate_cases(
    network: UNet,
    cases: list[CaseVolumes],
    config: TrainConfig,
    device: torch.device,
    schedule: BridgeSchedule,
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Scores per case and their means: ``{"psnr", "ssim", "mae", "seconds", "slices", "cases": [...]}``.

    ``progress(done, total)`` counts the held-out slices translated so far.
    """
    start = time.perf_counter()
    denoiser = network_denoiser(network, autocast_dtype=autocast_dtype)
    sampling = config.validation_sampling()
    total = validation_slices(cases, config.val_slices)
    done = 0
    per_case = []
    for case in cases:
        slab = middle_slab(case.mask, config.val_slices)
        ct, mri, mask = case.ct[slab], case.mri[slab], case.mask[slab]
        depth = ct.shape[0]

        def report(windows_done: int, windows_total: int, before: int = done, depth: int = depth) -> None:
            if progress is not None:
                progress(before + round(depth * windows_done / max(windows_total, 1)), total)

        pred = sample_model_space(
            denoiser,
            ct,
            case.key,
            sampling,
            device,
            schedule,
            batch_size=config.val_batch_size or None,
            progress=report,
        )
        done += depth
        region = mask if mask.any() else None
        per_case.append(
            {
                "case": case.name,
                "slices": [slab.start, slab.stop],
                "psnr": psnr(pred, mri, region),
                "ssim": ssim(pred, mri, region),
                "mae": mae(pred, mri, region),
            }
        )
    summary: dict[str, Any] = {k: float(np.mean([c[k] for c in per_case])) for k in ("psnr", "ssim", "mae")}
    summary["seconds"] = time.perf_counter() - start
    summary["slices"] = total
    summary["cases"] = per_case
    return summary
