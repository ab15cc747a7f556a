"""Settings that travel inside weights files and manifests: the sampler's, and the JSON round trip
that every settings dataclass shares (the preprocessing settings live with preprocessing)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import Ct2mriError

T = TypeVar("T")
SAMPLER_MODES = ("independent", "coprediction", "ista")
CORRECTION_NORMS = ("paper", "released")
CORRECTION_CAP = 0.02  # of the image range: far above the released scale's moves, far below a wrecking one


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
    def from_dict(cls, data: dict[str, Any]):
        return dataclass_from_dict(cls, data, cls._what)


# The sampler of the paper's experiments (99 network evaluations per window).
PAPER_SAMPLING: dict[str, Any] = {
    "mode": "ista",
    "steps": 50,
    "corrections": 1,
    "step_size": 0.5,
    "correction_norm": "paper",
}


@dataclass(frozen=True)
class SamplingConfig(SettingsMixin):
    """Sampler settings: a model's defaults travel in its weights file, ``translate`` options
    override them (:meth:`with_overrides`)."""

    _what = "sampling"

    steps: int = 50
    corrections: int = 1
    step_size: float = 0.5
    mode: str = "ista"
    correction_norm: str = "released"
    correction_cap: float = (
        CORRECTION_CAP  # most a correction moves a pixel, as a share of the [-1, 1] range (0: no cap)
    )

    def with_overrides(
        self,
        steps: int | None = None,
        corrections: int | None = None,
        step_size: float | None = None,
        mode: str | None = None,
        correction_cap: float | None = None,
    ) -> SamplingConfig:
        """These settings with the given ones (those not None) replacing them."""
        given: dict[str, Any] = {
            "steps": steps,
            "corrections": corrections,
            "step_size": step_size,
            "mode": mode,
            "correction_cap": correction_cap,
        }
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})

    def as_paper(self) -> SamplingConfig:
        """The paper's sampler (ISTA, 50 steps, one correction of lambda 0.5 each, Eq. 5's step
        scale), keeping this configuration's correction cap."""
        return dataclasses.replace(self, **PAPER_SAMPLING)

    def check(self, num_timesteps: int = 1000) -> None:
        """Refuse settings that cannot be sampled, in the words of ``translate``'s options."""
        if self.steps < 2:
            raise Ct2mriError(f"--steps must be at least 2, got {self.steps}")
        if self.steps > num_timesteps:
            raise Ct2mriError(f"--steps {self.steps}: the bridge has only {num_timesteps} time steps")
        if self.corrections < 0:
            raise Ct2mriError(f"--corrections must be >= 0, got {self.corrections}")
        if self.mode not in SAMPLER_MODES:
            raise Ct2mriError(f"--sampler must be one of {', '.join(SAMPLER_MODES)}, got {self.mode!r}")
        if not math.isfinite(self.step_size) or self.step_size < 0:
            raise Ct2mriError(f"--step-size must be a finite number >= 0, got {self.step_size}")
        if self.correction_norm not in CORRECTION_NORMS:
            raise Ct2mriError(
                f"correction_norm must be one of {', '.join(CORRECTION_NORMS)}, got {self.correction_norm!r}"
            )
        if not math.isfinite(self.correction_cap) or self.correction_cap < 0:
            raise Ct2mriError(f"--correction-cap must be a finite number >= 0, got {self.correction_cap}")
