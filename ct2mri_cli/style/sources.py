"""Where a style key comes from: an MRI volume, a key file, a bundled name, or the model default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..bundled import KEY_SUFFIX, bundled_key_names, bundled_key_path
from ..errors import Ct2mriError
from ..reporting import info, warn
from .key import key_distance, load_style_key, quantisation_step, style_key

if TYPE_CHECKING:
    from ..io.volumes import Volume


def mri_style_key(
    path: str | os.PathLike, mask_path: str | os.PathLike | None = None, normalise: str = "auto"
) -> torch.Tensor:
    """Read an MRI (and optional brain mask), bring it to [0, 1] as asked and return its key.

    The key is taken over the brain: the mask given, a brain-only image's non-zero voxels, or the
    brain found by registration to a template (:mod:`ct2mri_cli.style.brain`, then keyed by
    :func:`found_brain_key`).  ``normalise``: ``auto`` keeps a volume already in [0, 1] and
    otherwise applies the robust min-max of preprocessing; ``robust`` always does; ``none`` never
    does.
    """
    from ..io.volumes import read_volume
    from .brain import find_brain

    _check_normalise(normalise)
    volume = read_volume(path)
    refuse_ct_as_mri(volume.data, str(path))
    if mask_path is not None:
        mask_volume = read_volume(mask_path)
        if mask_volume.shape != volume.shape:
            raise Ct2mriError(f"{mask_path}: mask shape {mask_volume.shape} differs from {path} {volume.shape}")
        brain = np.asarray(mask_volume.data) > 0
        return _key_over(volume, brain, brain, brain, normalise)
    found = find_brain(volume)
    for message in found.warnings:
        warn(message)
    info(
        f"{path}: style key over its brain ({found.how}, {found.mask.sum() * np.prod(volume.spacing) / 1000.0:.0f} mL)"
    )
    if found.how == "brain-only image":
        return _key_over(volume, found.mask, found.mask, None, normalise)
    return found_brain_key(volume, found.mask, normalise)


def found_brain_key(volume: Volume, brain: np.ndarray, normalise: str = "auto") -> torch.Tensor:
    """The key over a brain that was found rather than given: intensities normalised on its core,
    4 mm inside the found edge, where a registered mask's errors cannot reach, and counted over
    the whole brain."""
    from .brain import CORE_EROSION_MM, eroded

    _check_normalise(normalise)
    return _key_over(volume, brain, eroded(brain, volume.affine, CORE_EROSION_MM), brain, normalise)


def _check_normalise(normalise: str) -> None:
    if normalise not in ("auto", "robust", "none"):
        raise Ct2mriError(f"normalisation must be auto, robust or none, not {normalise!r}")


def _key_over(
    volume: Volume, region: np.ndarray, core: np.ndarray, mask: np.ndarray | None, normalise: str
) -> torch.Tensor:
    """The key of ``volume`` over ``region``, normalised (as ``normalise`` says) on ``core``;
    ``mask`` is what the histogram counts (None: every voxel in (0.001, 1])."""
    from ..preprocessing.intensity import mri_percentile_range

    data = np.asarray(volume.data, dtype=np.float32)
    already_unit = float(data.min()) >= 0.0 and float(data.max()) <= 1.0
    step = quantisation_step(data[region]) if region.any() else None
    if normalise == "robust" or (normalise == "auto" and not already_unit):
        lo, hi = mri_percentile_range(data, core, source=volume.name)
        data = np.clip((data.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32) * region
        step = None if step is None else step / (hi - lo)
    return style_key(data, mask, quantum=step)


CT_AIR_SHARE = 0.05  # of voxels below -500: air in a CT in HU; an MRI has none


def refuse_ct_as_mri(data: np.ndarray, source: str) -> None:
    """Refuse a volume given as an MRI that is a CT in Hounsfield units (air near -1000): its
    "brain" and its key would describe CT numbers, and every output made from them would be wrong."""
    below = float(np.mean(np.asarray(data) < -500.0))
    if below > CT_AIR_SHARE:
        raise Ct2mriError(
            f"{source}: {100 * below:.0f}% of voxels lie below -500, as air does in a CT in Hounsfield "
            "units; an MRI is needed here, not a CT"
        )


# How far (W1, in [0, 1] intensity units) a key may lie from a model's default key before it is
# unlike what the model trained with: the whole-head Colin27 key lay 0.28 from the bundled model's
# average key and its brain 0.035 (the training keys themselves lie within about 0.05).
STYLE_FAR = 0.1


def check_style_distance(key: torch.Tensor, default_key: torch.Tensor, source: str) -> float:
    """The key's distance from the model's default key; a warning when it is far from it."""
    distance = key_distance(key, default_key)
    if distance > STYLE_FAR:
        warn(
            f"{source}: the style key lies {distance:.3f} from the model's default key (W1; training keys lie within "
            f"about 0.05): the model never saw such a style, and the output may be off"
        )
    return distance


def resolve_style(
    spec: str | None, default_key: torch.Tensor, mask_path: str | os.PathLike | None = None
) -> tuple[torch.Tensor, str]:
    """The key named by a ``--style`` value and a description of its source.

    ``None`` or ``default``: the model's default key; a bundled name (``average``, ``colin27``);
    a ``.safetensors`` key file; anything else is read as an MRI volume.
    """
    if spec is None or spec == "default":
        key, source = default_key, "model default"
    elif os.sep not in spec and "/" not in spec and bundled_key_path(spec).is_file():
        key, source = load_style_key(bundled_key_path(spec))[0], f"bundled:{spec}"
    else:
        path = Path(spec)
        if not path.exists():
            names = ", ".join(bundled_key_names()) or "none installed"
            raise Ct2mriError(f"--style {spec}: no such file, and not a bundled key ({names})")
        if not path.name.lower().endswith(KEY_SUFFIX):
            return mri_style_key(path, mask_path), f"mri:{path}"
        key, source = load_style_key(path)[0], f"file:{path}"
    if mask_path is not None:
        raise Ct2mriError("--style-mask goes with --style MRI (an MRI volume)")
    return key, source
