"""Export of the EMA network to the inference weights format (``translate`` reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..diffusion.bridge import BridgeConfig
from ..network import UNet
from ..preprocessing.config import PreprocessConfig
from ..weights import ModelBundle, save_weights
from .config import TrainConfig


def export_weights(
    path: Path,
    network: UNet,
    *,
    config: TrainConfig,
    bridge: BridgeConfig,
    preprocess: PreprocessConfig,
    default_style_key: torch.Tensor,
    step: int,
    provenance: dict[str, Any],
) -> str:
    """Write ``network`` (the EMA weights) with the bridge it was trained on, the data's
    preprocessing and average style key.

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
        bridge=bridge,
        preprocess=preprocess,
        sampling=config.validation_sampling(),  # the validated sampler becomes translate's default
        default_style_key=default_style_key,
        provenance=record,
    )
    return save_weights(path, bundle)
