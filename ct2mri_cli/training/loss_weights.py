"""Per-pixel loss weights that make the CT's CSF count more in training.

CSF is a small share of the brain (about 14 % of its voxels at 2 mm) and, where it is thin (sulci,
slit-like ventricles), only a few pixels wide; a plain mean error lets a network that draws an
average brain's CSF lose little.  Weighting the pixels that the CT window itself shows as CSF
(inside the brain, below :data:`~ct2mri_cli.evaluation.csf.CSF_BELOW_HU`) asks the network to
follow the CT there.
"""

from __future__ import annotations

import torch

from ..diffusion.bridge import from_bridge_range
from ..evaluation.csf import CSF_BELOW_HU


def csf_threshold(window_hu: tuple[float, float]) -> float:
    """:data:`CSF_BELOW_HU` on the [0, 1] scale of a CT normalised to ``window_hu``."""
    lo, hi = window_hu
    return (CSF_BELOW_HU - lo) / (hi - lo)


def csf_pixel_weights(ct: torch.Tensor, window_hu: tuple[float, float], extra: float) -> torch.Tensor:
    """Weights 1 + ``extra`` where the CT window (bridge range, the brain masked to 0 outside)
    shows CSF inside the brain, 1 elsewhere; the shape of ``ct``."""
    ct01 = from_bridge_range(ct)
    csf = (ct01 > 0) & (ct01 < csf_threshold(window_hu))
    return 1.0 + extra * csf.to(ct.dtype)
