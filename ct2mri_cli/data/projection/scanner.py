"""What the projection CT model draws per scan: tissue attenuation, slice, kernel, noise, artefacts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Tissues the model renders, in the order of the fraction maps it is given.
TISSUES = ("csf", "gm", "wm", "cortical", "diploe", "fat", "soft", "air", "calcification")
VARIETIES = ("calibrated", "wide")
SLICE_THICKNESSES_MM = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)


@dataclass(frozen=True)
class ScannerParams:
    """One scan's appearance.

    ``hu``: the HU of each tissue at full volume (partial volumes mix linearly in attenuation);
    ``slice_mm``: width of the rectangular slice profile; ``kernel_cutoff_per_mm`` and
    ``kernel_boost``: the reconstruction kernel's in-plane transfer, a raised cosine reaching 0 at
    the cutoff times ``1 + boost (f / cutoff)^2`` (edge enhancement of sharper kernels);
    ``noise_sd_hu``: SD of the noise in homogeneous brain, with the measured texture of a real
    head CT stretched to the kernel; ``noise_nonuniformity``: how much more noise behind long
    paths (0 uniform, 1 variance in proportion to the attenuation each pixel's rays cross);
    ``streak_hu``: amplitude (95th percentile inside the intracranial volume) of the
    beam-hardening artefact of bone, dark bands and streaks between dense bone.
    """

    variety: str
    hu: dict[str, float]
    slice_mm: float
    kernel_cutoff_per_mm: float
    kernel_boost: float
    noise_sd_hu: float
    noise_nonuniformity: float
    streak_hu: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, rounded to what matters."""
        data = asdict(self)
        data["hu"] = {k: round(float(v), 2) for k, v in self.hu.items()}
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in data.items()}


def sample_scanner(rng: np.random.Generator, variety: str = "wide") -> ScannerParams:
    """Draw a scan: ``calibrated`` near the real head CT's appearance, ``wide`` over scanners and
    protocols (absolute levels, grey/white contrast, slice width, kernel, noise, artefacts)."""
    if variety not in VARIETIES:
        raise ValueError(f"variety must be one of {VARIETIES}, got {variety!r}")
    u = rng.uniform
    wide = variety == "wide"
    offset = u(-6.0, 6.0) if wide else u(-1.5, 1.5)  # the scanner's water calibration
    wm = (u(19.0, 30.0) if wide else u(21.0, 25.0)) + offset
    hu = {
        "csf": (u(-2.0, 12.0) if wide else u(3.0, 9.0)) + offset,
        "gm": wm + (u(4.0, 13.0) if wide else u(8.0, 11.0)),
        "wm": wm,
        "cortical": u(1000.0, 1900.0) if wide else u(1200.0, 1500.0),
        "diploe": u(350.0, 900.0) if wide else u(450.0, 700.0),
        "fat": u(-120.0, -70.0),
        "soft": u(25.0, 65.0) if wide else u(35.0, 55.0),
        "air": -1000.0,
        "calcification": u(100.0, 600.0),
    }
    return ScannerParams(
        variety=variety,
        hu=hu,
        slice_mm=float(rng.choice(SLICE_THICKNESSES_MM)) if wide else 1.5,
        kernel_cutoff_per_mm=u(0.35, 0.9) if wide else u(0.5, 0.6),
        kernel_boost=u(0.0, 0.8) if wide else u(0.0, 0.2),
        noise_sd_hu=float(np.exp(u(np.log(1.5), np.log(10.0)))) if wide else u(4.5, 6.0),
        noise_nonuniformity=u(0.0, 1.0) if wide else u(0.3, 0.6),
        streak_hu=u(0.0, 14.0) if wide else u(2.0, 6.0),
    )
