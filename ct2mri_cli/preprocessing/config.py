"""How a native scan is put on the model grid and normalised: the settings that preprocessing
records in every training folder and weights file, so translation cuts the slices training saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..settings import SettingsMixin, dataclass_from_dict


@dataclass(frozen=True)
class PreprocessConfig(SettingsMixin):
    """How a native scan is put on the model grid and normalised.

    Model space is canonical RAS resampled to ``spacing_mm`` (isotropic), cropped to the brain's
    bounding box plus ``margin_mm`` and padded/cropped in-plane to ``in_plane`` = (H, W).  Arrays in
    model space are indexed (Z, H, W) = (inferior->superior, posterior->anterior, left->right).
    """

    _what = "preprocessing"

    spacing_mm: float = 1.0
    in_plane: tuple[int, int] = (192, 160)  # a whole adult brain at 1 mm: AP 192, LR 160
    margin_mm: float = 4.0
    ct_window_hu: tuple[float, float] = (0.0, 80.0)
    mri_percentiles: tuple[float, float] = (0.5, 99.5)
    # "canonical": slices are cut in the head's canonical frame (the pose found by registration,
    # ct2mri_cli.preprocessing.pose); "native": along the scan's world axes.
    frame: str = "canonical"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        """The settings a weights file or manifest records; one without ``frame`` was made before
        the frame was recorded, when slices followed the scan's axes."""
        return dataclass_from_dict(cls, {"frame": "native", **data}, cls._what)
