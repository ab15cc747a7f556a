"""ct2mri: brain CT to synthetic T1 MRI with a 2D Brownian-bridge diffusion model.

The package ``ct2mri_cli`` holds both the library (everything importable here and in its
subpackages) and the ``ct2mri`` command (``ct2mri_cli.cli``, which only parses and prints).
The public Python API is re-exported here lazily so that ``import ct2mri_cli`` (and the CLI's
``--version``) stays fast; torch is imported on first use of a torch-backed name.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "sample_volume": "ct2mri_cli.diffusion.sampler",
    "sample_independent": "ct2mri_cli.diffusion.sampler",
    "sample_coprediction": "ct2mri_cli.diffusion.sampler",
    "sample_ista": "ct2mri_cli.diffusion.sampler",
    "BridgeSchedule": "ct2mri_cli.diffusion.bridge",
    "UNet": "ct2mri_cli.network",
    "UNetConfig": "ct2mri_cli.network",
    "network_denoiser": "ct2mri_cli.network",
    "style_key": "ct2mri_cli.style.key",
    "average_style_keys": "ct2mri_cli.style.key",
    "save_style_key": "ct2mri_cli.style.key",
    "load_style_key": "ct2mri_cli.style.key",
    "save_weights": "ct2mri_cli.weights",
    "load_weights": "ct2mri_cli.weights",
    "PreprocessConfig": "ct2mri_cli.preprocessing.config",
    "SamplingConfig": "ct2mri_cli.settings",
    "Translator": "ct2mri_cli.inference.translator",
    "TranslateRequest": "ct2mri_cli.inference.plan",
    "translate_files": "ct2mri_cli.inference.plan",
    "read_volume": "ct2mri_cli.io.volumes",
    "Ct2mriError": "ct2mri_cli.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ct2mri_cli' has no attribute {name!r}")
    return getattr(import_module(module), name)
