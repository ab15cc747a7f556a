"""Style keys (SKC): the 3 x 128 histogram curves of an MRI volume that condition the network.

A key holds, for intensities in (0.001, 1] of a volume normalised to [0, 1] (background, i.e.
zeros, excluded):

- ``h``: the normalised 128-bin histogram, scaled by 10,
- ``cumsum(h)``: its cumulative curve (ends at 10),
- ``10 * [h_0, diff(h)]``: its differential, scaled by 10 once more.

The scales follow the released implementation so keys computed here are interchangeable with
keys of networks trained that way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
import torch

from ..errors import Ct2mriError

NUM_BINS = 128
LOWER_EDGE = 0.001
UPPER_EDGE = 1.0
HIST_SCALE = 10.0
KEY_SHAPE = (3, NUM_BINS)
KEY_TENSOR_NAME = "style_key"
KEY_FORMAT = "ct2mri-style-key"


def style_key(
    volume01: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    quantum: float | None = None,
) -> torch.Tensor:
    """Return the (3, 128) float32 style key of an MRI volume already normalised to [0, 1].

    ``mask`` (optional, same shape) restricts the histogram to the brain; voxels at or below
    0.001 and above 1 are never counted.  ``quantum`` is the step between the intensity levels a
    scanner stored (in [0, 1] units) when the volume holds such levels: each level then counts as
    the interval it stands for, spread evenly over the bins it covers, so a key does not turn
    into a comb of empty and full bins when levels are coarser than bins.
    """
    values = np.asarray(volume01.detach().cpu() if isinstance(volume01, torch.Tensor) else volume01, dtype=np.float64)
    if mask is not None:
        mask_np = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
        if mask_np.shape != values.shape:
            raise ValueError(f"mask shape {mask_np.shape} differs from volume shape {values.shape}")
        values = values[mask_np]
    values = values[np.isfinite(values) & (values > LOWER_EDGE) & (values <= UPPER_EDGE)]
    if values.size == 0:
        raise Ct2mriError("no voxel in (0.001, 1]: the volume is empty or not normalised to [0, 1]")
    if quantum is None or quantum <= 0:
        counts, _ = np.histogram(values, bins=NUM_BINS, range=(LOWER_EDGE, UPPER_EDGE))
    else:
        counts = _interval_counts(values, float(quantum))
    return key_from_counts(counts)


def key_from_counts(counts: np.ndarray) -> torch.Tensor:
    """Keys (..., 3, NUM_BINS) float32 of bin counts (..., NUM_BINS): histogram, cumulative, differential."""
    counts = np.asarray(counts, dtype=np.float64)
    hist = HIST_SCALE * counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1e-12)
    cumulative = np.cumsum(hist, axis=-1)
    differential = HIST_SCALE * np.diff(hist, axis=-1, prepend=0.0)
    return torch.from_numpy(np.stack([hist, cumulative, differential], axis=-2).astype(np.float32))


def _interval_counts(values: np.ndarray, quantum: float) -> np.ndarray:
    """Bin counts with every value (all in the key's range) spread over [v - q/2, v + q/2], cut
    to the range and renormalised, so each voxel still counts once."""
    levels, counts = np.unique(values, return_counts=True)
    edges = np.linspace(LOWER_EDGE, UPPER_EDGE, NUM_BINS + 1)
    lo = np.clip(levels - quantum / 2.0, LOWER_EDGE, UPPER_EDGE)[:, None]
    hi = np.clip(levels + quantum / 2.0, LOWER_EDGE, UPPER_EDGE)[:, None]
    covered = np.clip(np.minimum(hi, edges[None, 1:]) - np.maximum(lo, edges[None, :-1]), 0.0, None)
    # every level lies in the range already, so its interval always covers some of it
    return counts @ (covered / covered.sum(axis=1, keepdims=True))


def quantisation_step(values: np.ndarray, max_levels: int = 65536) -> float | None:
    """The step between stored intensity levels when ``values`` hold evenly spaced levels shared by
    many voxels (integers, or integers times a rescale slope), else None."""
    values = np.asarray(values, dtype=np.float64)
    levels = np.unique(values)
    # stored levels are shared by many voxels; a float volume's values are nearly all distinct
    if levels.size < 2 or levels.size > max_levels or values.size < 4 * levels.size:
        return None
    gaps = np.diff(levels)
    step = float(gaps.min())
    if step <= 0:
        return None
    multiples = gaps / step
    if np.max(np.abs(multiples - np.round(multiples))) > 1e-3:
        return None
    return step


def key_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """1-Wasserstein distance between the intensity histograms of two keys, in [0, 1] intensity
    units (how far, on average, the intensities of one must move to match the other)."""
    ha = validate_style_key(a)[0].double().numpy()
    hb = validate_style_key(b)[0].double().numpy()
    width = (UPPER_EDGE - LOWER_EDGE) / NUM_BINS
    return float(np.abs(np.cumsum(ha / ha.sum()) - np.cumsum(hb / hb.sum())).sum() * width)


def average_style_keys(keys: Iterable[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of several keys (the paper's default key is the training-set average)."""
    stacked = [validate_style_key(k) for k in keys]
    if not stacked:
        raise ValueError("cannot average an empty list of style keys")
    return torch.stack(stacked).double().mean(dim=0).float()


def validate_style_key(key: torch.Tensor | np.ndarray, source: str = "style key") -> torch.Tensor:
    """Return ``key`` as a float32 (3, 128) tensor, or raise a one-line error naming ``source``."""
    tensor = torch.as_tensor(key, dtype=torch.float32)
    if tuple(tensor.shape) != KEY_SHAPE:
        raise Ct2mriError(f"{source}: a style key has shape 3x128, got {'x'.join(map(str, tensor.shape))}")
    if not torch.isfinite(tensor).all():
        raise Ct2mriError(f"{source}: the style key contains NaN or Inf")
    return tensor


def save_style_key(path: str | os.PathLike, key: torch.Tensor, metadata: dict[str, str] | None = None) -> None:
    """Write a key as safetensors (tensor ``style_key``) with string metadata, atomically."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_output

    meta = {"format": KEY_FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    tensor = validate_style_key(key).contiguous()
    with atomic_output(path) as tmp:
        save_file({KEY_TENSOR_NAME: tensor}, str(tmp), metadata=meta)


def load_style_key(path: str | os.PathLike) -> tuple[torch.Tensor, dict[str, str]]:
    """Read a key written by :func:`save_style_key`; returns (key, metadata)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if KEY_TENSOR_NAME not in handle.keys():
                raise Ct2mriError(f"{path}: not a style key file (no '{KEY_TENSOR_NAME}' tensor)")
            key = handle.get_tensor(KEY_TENSOR_NAME)
    except (SafetensorError, OSError, ValueError) as exc:
        raise Ct2mriError(f"{path}: cannot read a style key ({exc})") from None
    return validate_style_key(key, str(path)), dict(metadata)


def key_curves(key: torch.Tensor) -> Sequence[np.ndarray]:
    """The three curves (histogram, cumulative, differential) as numpy arrays, for plotting."""
    return [row.numpy() for row in validate_style_key(key)]
