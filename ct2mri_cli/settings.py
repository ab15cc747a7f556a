"""Settings that travel inside a weights file and connect preprocessing to the network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict[str, Any], what: str) -> T:
    """Build a frozen settings dataclass from JSON data; lists become tuples, unknown keys fail."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} settings: {sorted(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class SettingsMixin:
    """Mixin: ``to_dict`` / ``from_dict`` for the JSON stored in weights and manifests."""

    _what = "the"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # noqa: ANN206
        return dataclass_from_dict(cls, data, cls._what)


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


@dataclass(frozen=True)
class SamplingConfig(SettingsMixin):
    """Default sampler settings of a model (``translate`` options override them)."""

    _what = "sampling"

    steps: int = 50
    corrections: int = 1
    step_size: float = 0.5
    mode: str = "ista"
    correction_norm: str = "released"
