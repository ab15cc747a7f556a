"""Export of the EMA network to the inference weights format (``translate`` reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..diffusion.bridge import BridgeConfig
from ..settings import PreprocessConfig, SamplingConfig
from ..network.unet import UNet
from ..weights import ModelBundle, save_weights
from .config import TrainConfig


def export_weights(
    path: Path,
    network: UNet,
    *,
    config: TrainConfig,
    preprocess: PreprocessConfig,
    default_style_key: torch.Tensor,
    step: int,
    provenance: dict[str, Any],
) -> str:
    """Write ``network`` (the EMA weights) with the data's preprocessing and average style key.

    Returns the file's sha256.  ``provenance`` adds to the standard entries (steps, seed, data).
    """
    record = {
        "training_steps": step,
        "seed": config.seed,
        "data": Path(config.data_dir).resolve().name,
        "preset": config.preset,
        "loss": config.loss,
        "ema_decay": config.ema_decay,
        **provenance,
    }
    bundle = ModelBundle(
        network=network,
        bridge=BridgeConfig(),
        preprocess=preprocess,
        # The sampler the model was validated with becomes its default for translate.
        sampling=SamplingConfig(
            steps=config.val_steps,
            corrections=config.val_corrections,
            step_size=config.val_step_size,
            correction_norm=config.val_correction_norm,
        ),
        default_style_key=default_style_key,
        provenance=record,
    )
    return save_weights(path, bundle)
