"""The trust map: per voxel, the error a synthetic T1 is expected to have, and the case's summary.

Built from what sampling gives for free: the spread of the overlapping windows' predictions of
each slice, averaged over the sampling steps (where windows disagree the network is unsure),
and two places where errors gather on brains the model never saw: sharp edges of the output
(tissue borders a blurred prediction misses) and the brain's rim (the thin CSF between cortex
and skull). The map is a linear model of the absolute error in [0, 1] intensity units whose
coefficients were fitted on brains left out of training (docs/BENCHMARKS.md, "Trust map"), so
it reads as "expected error here": higher means less to be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..io.images import array_from_sitk, sitk_from_voxels
from ..preprocessing.checks import Check

# expected |error| = INTERCEPT + SPREAD x spread + EDGE_SHARPNESS x |gradient| (per mm) + RIM x exp(-depth / RIM_MM)
INTERCEPT = 0.050
SPREAD = 1.35
EDGE_SHARPNESS = 0.24  # per (intensity per mm)
RIM = 0.034
RIM_MM = 4.0
UNSURE_ERROR = 0.2  # a voxel is "unsure" where its expected error exceeds this
UNSURE_MEAN = 0.12  # a case whose mean expected error in the brain exceeds this gets the trust warning


class SpreadAverage:
    """Collects the windows' spread at each sampling step (``sample_volume``'s ``on_spread``)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.steps = 0

    def reset(self) -> None:
        self.total, self.steps = None, 0

    def __call__(self, t: int, spread: torch.Tensor) -> None:
        spread = spread.float().cpu()
        self.total = spread.clone() if self.total is None else self.total + spread
        self.steps += 1

    def mean01(self) -> np.ndarray:
        """The mean spread over the steps, in [0, 1] intensity units (the bridge's range is 2 wide)."""
        if self.total is None:
            raise ValueError("no sampling step was recorded")
        return (self.total / (2.0 * self.steps)).numpy()


def _rim_depth_mm(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Distance (mm) of each brain voxel from the mask's border (0 outside); (Z, H, W) is (z, y, x)."""
    import SimpleITK as sitk

    image = sitk_from_voxels(mask.astype(np.uint8).transpose(2, 1, 0), (spacing_mm,) * 3)
    depth = array_from_sitk(
        sitk.SignedMaurerDistanceMap(image, insideIsPositive=True, squaredDistance=False, useImageSpacing=True)
    ).transpose(2, 1, 0)
    return np.clip(depth, 0.0, None).astype(np.float32)


def expected_error(spread01: np.ndarray, mri01: np.ndarray, mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """The trust map in model space, (Z, H, W): expected |error| of each brain voxel, 0 outside."""
    gy, gx = np.gradient(mri01.astype(np.float32), spacing_mm, axis=(1, 2))
    sharpness = np.hypot(gx, gy)
    rim = np.exp(-_rim_depth_mm(mask, spacing_mm) / RIM_MM)
    error = INTERCEPT + SPREAD * spread01 + EDGE_SHARPNESS * sharpness + RIM * rim
    return np.where(mask, error, 0.0).astype(np.float32)


def on_native_brain(error_native: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The map carried back to the CT's grid, restricted to the CT's brain mask.

    Brain voxels of the CT's grid that fall (partly) outside the model-space brain were
    interpolated towards the 0 outside it; their output is faded at the rim too, so they get
    the map's value at the brain's border rather than a value that reads as "fully trusted".
    """
    rim_value = INTERCEPT + RIM
    faded = error_native < INTERCEPT
    return np.where(mask, np.where(faded, rim_value, error_native), 0.0).astype(np.float32)


@dataclass(frozen=True)
class TrustSummary:
    mean_expected_error: float
    unsure_share: float  # share of brain voxels whose expected error exceeds UNSURE_ERROR

    def to_dict(self) -> dict[str, float]:
        return {"mean_expected_error": round(self.mean_expected_error, 4), "unsure_share": round(self.unsure_share, 4)}

    def check(self) -> Check:
        """The named check ``trust``: a warning when the map says the case as a whole is unsure."""
        rule = f"mean expected error in the brain <= {UNSURE_MEAN:g}"
        if self.mean_expected_error > UNSURE_MEAN:
            return Check(
                "trust",
                round(self.mean_expected_error, 4),
                rule,
                "warning",
                f"the trust map expects large errors ({100 * self.unsure_share:.0f} % of the brain above "
                f"{UNSURE_ERROR:g}); check the output against the CT before use",
            )
        return Check("trust", round(self.mean_expected_error, 4), rule, "pass")


def summarise(error_map: np.ndarray, mask: np.ndarray) -> TrustSummary:
    """The case's trust summary over the brain voxels of the (native-grid) map."""
    inside = error_map[mask]
    if inside.size == 0:
        return TrustSummary(0.0, 0.0)
    return TrustSummary(float(inside.mean()), float((inside > UNSURE_ERROR).mean()))
