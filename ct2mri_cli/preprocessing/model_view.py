"""The model's view of a CT: its brain mask and its windowed intensities on the model grid.

``preprocess`` (training pairs), ``translate`` and training validation all go through here, so a
model sees at inference exactly what it saw in training.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..io.volumes import Volume
from .brainmask import extract_brain_ct
from .geometry import GridRecord, apply_model_grid
from .intensity import normalize_ct


def brain_mask_with_notes(ct: Volume) -> tuple[np.ndarray, list[str]]:
    """Automatic CT brain extraction; its warnings (intensities unlike HU) come back as notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = extract_brain_ct(ct)
    return mask, [str(w.message) for w in caught]


def ct_to_model_space(
    ct_hu: np.ndarray, mask: np.ndarray, record: GridRecord, window_hu: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The model's view of a CT: windowed to [0, 1] on its native grid, zero outside the brain,
    then on the model grid with the brain mask.  Training data and translation both go through
    here, so a model sees at inference exactly what it saw in training."""
    ct01 = normalize_ct(np.asarray(ct_hu, dtype=np.float32), window_hu) * mask
    model_mask = apply_model_grid(np.asarray(mask, dtype=np.float32), record, order="nearest") > 0.5
    model_ct = np.clip(apply_model_grid(ct01, record, order="linear"), 0.0, 1.0) * model_mask
    return model_ct.astype(np.float32), model_mask
