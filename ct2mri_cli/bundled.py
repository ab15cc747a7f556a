"""Where the bundled model and style keys live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_WEIGHTS_NAME = "ct2mri-2mm.safetensors"
KEY_SUFFIX = ".safetensors"


def models_dir() -> Path:
    """The folder of bundled weights and style keys.

    ``$CT2MRI_MODELS`` when set, else ``models/`` beside the package (a source checkout), else the
    data folder a wheel installs (``<prefix>/share/ct2mri/models``).
    """
    env = os.environ.get("CT2MRI_MODELS")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "models"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "ct2mri" / "models"


def default_weights() -> Path:
    return models_dir() / DEFAULT_WEIGHTS_NAME


def bundled_key_path(name: str) -> Path:
    return models_dir() / "keys" / f"{name}{KEY_SUFFIX}"


def bundled_key_names() -> list[str]:
    folder = models_dir() / "keys"
    return sorted(p.name[: -len(KEY_SUFFIX)] for p in folder.glob(f"*{KEY_SUFFIX}")) if folder.is_dir() else []
