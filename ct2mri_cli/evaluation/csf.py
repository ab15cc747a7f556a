"""Does the synthetic T1 show the CSF that the CT shows?  A measure that needs no true MRI.

Inside the brain, CSF is the water-dense tissue of a CT (0-15 HU against 25-45 HU for grey and
white matter) and the darkest tissue of a T1.  The CT's CSF map is the brain's voxels below
:data:`CSF_BELOW_HU` once the CT is smoothed to about the model's resolution (its noise would
otherwise speckle the map); the T1's CSF map is the same share of the brain's voxels, taken
darkest first, so that no intensity threshold on the output is needed and a T1 of any style is
judged alike.  Their Dice overlap is 1 when the dark voxels of the output are exactly the CT's
CSF, and the share itself when they are placed at random: a template-like output that draws
ventricles and sulci where an average brain has them scores between the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..io.images import smoothed_array

CSF_BELOW_HU = 18.0  # halfway between CSF (about 8 HU) and white matter (about 28 HU)
SMOOTHING_MM = 1.0


@dataclass(frozen=True)
class CsfAgreement:
    """The Dice overlap of the CT's and the synthetic T1's CSF inside the brain, and the share of
    the brain that the CT shows as CSF (the Dice of a random placement)."""

    dice: float
    csf_share: float

    def to_dict(self) -> dict[str, float]:
        return {"dice": round(self.dice, 4), "csf_share": round(self.csf_share, 4)}


def ct_csf(
    ct_hu: np.ndarray, brain: np.ndarray, spacing: Sequence[float], smoothing_mm: float = SMOOTHING_MM
) -> np.ndarray:
    """The brain's voxels that the CT, smoothed by a Gaussian of ``smoothing_mm``, shows as CSF."""
    smoothed = smoothed_array(np.asarray(ct_hu, dtype=np.float32), spacing, smoothing_mm)
    return np.asarray(brain, dtype=bool) & (smoothed < CSF_BELOW_HU)


def darkest_share(t1: np.ndarray, brain: np.ndarray, share: float) -> np.ndarray:
    """The ``share`` of the brain's voxels that are darkest in ``t1`` (ties broken by voxel order)."""
    brain = np.asarray(brain, dtype=bool)
    values = np.asarray(t1, dtype=np.float64)[brain]
    count = int(round(share * values.size))
    chosen = np.zeros(values.size, dtype=bool)
    chosen[np.argsort(values, kind="stable")[:count]] = True
    out = np.zeros(brain.shape, dtype=bool)
    out[brain] = chosen
    return out


def csf_agreement(
    ct_hu: np.ndarray, t1: np.ndarray, brain: np.ndarray, spacing: Sequence[float], smoothing_mm: float = SMOOTHING_MM
) -> CsfAgreement:
    """Dice of the CT's CSF map and the synthetic T1's darkest voxels of the same share, inside
    ``brain`` (all three on one grid of voxel size ``spacing`` in mm)."""
    brain = np.asarray(brain, dtype=bool)
    if ct_hu.shape != brain.shape or t1.shape != brain.shape:
        raise ValueError(f"shapes differ: CT {ct_hu.shape}, T1 {t1.shape}, brain {brain.shape}")
    if not brain.any():
        raise ValueError("the brain mask is empty")
    from_ct = ct_csf(ct_hu, brain, spacing, smoothing_mm)
    share = float(from_ct.sum()) / float(brain.sum())
    from_t1 = darkest_share(t1, brain, share)
    both = float(from_ct.sum() + from_t1.sum())
    dice = 2.0 * float(np.count_nonzero(from_ct & from_t1)) / both if both else 1.0
    return CsfAgreement(dice=dice, csf_share=share)
