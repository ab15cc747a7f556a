"""Random T1 restyling of training windows, so that the network learns to follow style keys
beyond the few styles of its training pairs.

A restyling is a monotone piecewise-linear intensity curve on [0, 1] that keeps 0 and 1 (so a
robust min-max normalised MRI stays normalised): its slope on each of :data:`SEGMENTS` equal
segments is drawn within ``1 +- strength`` and the whole rescaled to end at 1.  It changes grey/
white and CSF contrast and the overall gamma the way sequences and scanners do.  The same curve
is applied to the MRI window and to its case's histogram, and the style key is recomputed from
that histogram: each case keeps its brain's intensities counted on :data:`FINE_BINS` bins that
split every key bin evenly, so the identity curve gives exactly the key of the case's file.
"""

from __future__ import annotations

import numpy as np
import torch

from ..style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE, key_from_counts

SEGMENTS = 6
FINE_PER_BIN = 8
FINE_BINS = NUM_BINS * FINE_PER_BIN
KNOTS = torch.linspace(0.0, 1.0, SEGMENTS + 1)


def value_counts(mri01: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The brain's voxels in the key's range (0.001, 1], counted on :data:`FINE_BINS` bins."""
    values = np.asarray(mri01, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    values = values[(values > LOWER_EDGE) & (values <= UPPER_EDGE)]
    counts, _ = np.histogram(values, bins=FINE_BINS, range=(LOWER_EDGE, UPPER_EDGE))
    return counts.astype(np.float32)


def draw_curves(generator: torch.Generator, count: int, share: float, strength: float) -> torch.Tensor:
    """(count, SEGMENTS + 1) knot values of random curves; a ``1 - share`` of them the identity."""
    slopes = 1.0 + strength * (2.0 * torch.rand((count, SEGMENTS), generator=generator) - 1.0)
    keep = torch.rand((count, 1), generator=generator) >= share
    slopes = torch.where(keep, torch.ones_like(slopes), slopes.clamp(min=0.05))
    rises = torch.cumsum(slopes, dim=1) / slopes.sum(dim=1, keepdim=True)
    return torch.cat([torch.zeros((count, 1)), rises], dim=1)


def apply_curves(x01: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Each sample of ``x01`` (B, ...) in [0, 1] passed through its curve (B, SEGMENTS + 1)."""
    flat = x01.reshape(x01.shape[0], -1).clamp(0.0, 1.0)
    position = flat * SEGMENTS
    segment = position.floor().clamp(max=SEGMENTS - 1).long()
    low = torch.gather(curves.to(x01.dtype), 1, segment)
    high = torch.gather(curves.to(x01.dtype), 1, segment + 1)
    out = low + (high - low) * (position - segment)
    return out.clamp(0.0, 1.0).reshape(x01.shape)  # rounding must not push 1 past the key's range


def restyled_keys(counts: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """The style keys (B, 3, NUM_BINS) of histograms ``counts`` (B, FINE_BINS) after their curves:
    each fine bin's voxels move with its centre; those leaving (0.001, 1] are not counted."""
    width = (UPPER_EDGE - LOWER_EDGE) / FINE_BINS
    centres = LOWER_EDGE + width * (torch.arange(FINE_BINS, dtype=torch.float64) + 0.5)
    moved = apply_curves(centres.expand(counts.shape[0], -1).contiguous(), curves.double())
    bins = torch.floor((moved - LOWER_EDGE) / (UPPER_EDGE - LOWER_EDGE) * NUM_BINS).long()
    inside = (moved > LOWER_EDGE) & (moved <= UPPER_EDGE)
    bins = bins.clamp(0, NUM_BINS - 1)
    hist = torch.zeros((counts.shape[0], NUM_BINS), dtype=torch.float64)
    hist.scatter_add_(1, bins, torch.where(inside, counts.double(), 0.0))
    return key_from_counts(hist.numpy())
