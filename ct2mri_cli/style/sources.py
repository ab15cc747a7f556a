"""Where a style key comes from: an MRI volume, a key file, a bundled name, or the model default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..bundled import KEY_SUFFIX, bundled_key_names, bundled_key_path
from ..errors import Ct2mriError
from ..reporting import warn
from .key import load_style_key, quantisation_step, style_key


def mri_style_key(path: str | os.PathLike, mask_path: Optional[str | os.PathLike] = None, normalise: str = "auto") -> torch.Tensor:
    """Read an MRI (and optional brain mask), bring it to [0, 1] as asked and return its key.

    ``normalise``: ``auto`` keeps a volume already in [0, 1] and otherwise applies the robust
    min-max of preprocessing over the non-zero voxels (or the mask); ``robust`` always does;
    ``none`` never does.
    """
    from ..io.volumes import read_volume
    from ..preprocessing.intensity import mri_percentile_range, normalize_mri

    if normalise not in ("auto", "robust", "none"):
        raise Ct2mriError(f"normalisation must be auto, robust or none, not {normalise!r}")
    volume = read_volume(path)
    data = np.asarray(volume.data, dtype=np.float32)
    mask = None
    if mask_path is not None:
        mask_volume = read_volume(mask_path)
        if mask_volume.shape != volume.shape:
            raise Ct2mriError(f"{mask_path}: mask shape {mask_volume.shape} differs from {path} {volume.shape}")
        mask = np.asarray(mask_volume.data) > 0
    warn_if_ct(data, str(path))
    region = mask if mask is not None else data > 0
    already_unit = float(data.min()) >= 0.0 and float(data.max()) <= 1.0
    step = quantisation_step(data[region]) if region.any() else None
    if normalise == "robust" or (normalise == "auto" and not already_unit):
        lo, hi = mri_percentile_range(data, region, source=str(path))
        data = normalize_mri(data, region, source=str(path))
        step = None if step is None else step / (hi - lo)
    return style_key(data, mask, quantum=step)


def warn_if_ct(data: np.ndarray, source: str) -> bool:
    """Warn when a volume given as an MRI looks like a CT in Hounsfield units (air near -1000)."""
    below = float(np.mean(np.asarray(data) < -500.0))
    if below > 0.05:
        warn(f"{source}: {100 * below:.0f}% of voxels lie below -500, as air does in a CT in Hounsfield units; "
             "a style key describes an MRI, and a CT's key will not give an MRI-like style")
        return True
    return False


def resolve_style(spec: Optional[str], default_key: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The key named by a ``--style`` value and a description of its source.

    ``None`` or ``default``: the model's default key; a bundled name (``average``, ``colin27``);
    a ``.safetensors`` key file; anything else is read as an MRI volume.
    """
    if spec is None or spec == "default":
        return default_key, "model default"
    bundled = bundled_key_path(spec)
    if os.sep not in spec and "/" not in spec and bundled.is_file():
        return load_style_key(bundled)[0], f"bundled:{spec}"
    path = Path(spec)
    if not path.exists():
        names = ", ".join(bundled_key_names()) or "none installed"
        raise Ct2mriError(f"--style {spec}: no such file, and not a bundled key ({names})")
    if path.name.lower().endswith(KEY_SUFFIX):
        return load_style_key(path)[0], f"file:{path}"
    return mri_style_key(path), f"mri:{path}"
