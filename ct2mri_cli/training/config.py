"""Training settings: the :class:`TrainConfig` dataclass, read from TOML/JSON plus ``key=value`` overrides.

Precedence (later wins): defaults, the configuration file, then overrides in the order given.
A configuration file holds the same keys as :class:`TrainConfig` at its top level; network
overrides go in a ``[network]`` table (TOML) or a ``"network"`` object (JSON), or on the command
line as ``network.<field>=value``.  The ``config.json`` a run writes is itself a valid file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..device import check_device_spec
from ..errors import Ct2mriError
from ..network import PRESETS, UNetConfig
from ..settings import CORRECTION_NORMS, SamplingConfig, SettingsMixin

LOSSES = ("l1", "weighted_l2")
LR_SCHEDULES = ("constant", "cosine")
# Network fields fixed by the method (6-channel input, 3 style tokens of 128 bins).
FIXED_NETWORK_FIELDS = ("in_channels", "out_channels", "style_tokens", "style_dim")
# Settings a resumed run may change without breaking the continuation of the optimisation.
RESUMABLE = frozenset(
    {
        "data_dir",
        "steps",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "val_every",
        "val_steps",
        "val_corrections",
        "val_step_size",
        "val_correction_norm",
        "val_batch_size",
        "val_slices",
        "device",
        "num_threads",
        "memory_map",
    }
)


@dataclass(frozen=True)
class TrainConfig(SettingsMixin):
    """Everything that defines a training run (saved as ``config.json`` and in every checkpoint)."""

    _what = "training"

    data_dir: str = ""
    init: str = ""  # a weights file whose network starts the run (fine-tuning, staged training)
    preset: str = "small"  # a key of ct2mri_cli.network.PRESETS
    network: dict[str, Any] = field(default_factory=dict)  # UNetConfig fields overriding the preset
    batch_size: int = 8  # windows per optimiser step and process (before accumulation)
    lr: float = 1e-4
    lr_schedule: str = "constant"  # "constant", or "cosine": down to min_lr_ratio x lr at the last step
    warmup_steps: int = 0  # the learning rate rises linearly from lr / warmup_steps over these steps
    min_lr_ratio: float = 0.0  # the cosine schedule's floor, as a share of lr
    adam_betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    ema_every: int = 1  # update the EMA every this many steps
    ema_start: int = 0  # before this step the EMA copies the weights
    grad_accumulation: int = 1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    loss: str = "l1"  # "l1" (released code) or "weighted_l2" (the paper's Eq. 2)
    csf_weight: float = 0.0  # extra loss weight on pixels the CT shows as CSF (training.loss_weights)
    steps: int = 10000  # optimiser steps in total
    seed: int = 0
    flip: bool = True  # random left-right flips of training windows
    restyle: float = 0.0  # share of training windows whose MRI and key get a random contrast curve
    restyle_strength: float = 0.5  # the curve's slopes lie within 1 +- this (training.restyle)
    crop: tuple[int, int] = (0, 0)  # random in-plane crops (H, W) of training windows; (0, 0): whole slices
    memory_map: bool = False  # training windows in files under RUN/windows/, memory-mapped, not in memory
    min_brain_voxels: int = 1  # a window's centre slice needs this many brain voxels
    val_subjects: int = 1  # subjects held out for validation (0: none)
    log_every: int = 10
    checkpoint_every: int = 1000  # 0: only the final checkpoint
    keep_checkpoints: int = 2  # numbered periodic checkpoints kept besides last.pt
    val_every: int = 1000  # 0: no validation
    val_steps: int = 10
    val_corrections: int = 1
    val_step_size: float = 0.5
    val_correction_norm: str = "released"
    val_batch_size: int = 0  # windows per network call when validating (0: a whole volume)
    val_slices: int = 8  # validate on this many slices through the middle of each brain (0: whole volumes)
    device: str = "auto"
    bf16: bool = True  # bf16 autocast of the network on CUDA (ignored elsewhere)
    num_threads: int = 0  # torch CPU threads (0: torch's default)

    def learning_rate(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (1 for the first): warm-up, then the schedule.

        A function of the step alone, so a resumed run follows the same curve."""
        if self.warmup_steps and step <= self.warmup_steps:
            return self.lr * step / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        span = max(self.steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        floor = self.lr * self.min_lr_ratio
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def network_config(self) -> UNetConfig:
        """The preset with the ``network`` overrides applied."""
        return dataclasses.replace(PRESETS[self.preset], **self.network)

    def validation_sampling(self) -> SamplingConfig:
        """The ISTA sampler of validation; an exported model keeps it as its default."""
        return SamplingConfig(
            steps=self.val_steps,
            corrections=self.val_corrections,
            step_size=self.val_step_size,
            mode="ista",
            correction_norm=self.val_correction_norm,
        )

    @property
    def windows_per_step(self) -> int:
        """Training windows per optimiser step and process."""
        return self.batch_size * self.grad_accumulation

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["network"] = dict(self.network)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(data)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_DEFAULTS = TrainConfig()
_NETWORK_DEFAULTS = UNetConfig()


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` or a one-line error naming the setting."""

    def bad(expected: str) -> Ct2mriError:
        return Ct2mriError(f"setting {name} = {value!r}: expected {expected}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if default and len(value) != len(default) and name != "network.channel_mult":
            raise bad(f"a list of {len(default)} values")
        element = default[0] if default else 0
        return tuple(_coerce(f"{name}[{i}]", v, element) for i, v in enumerate(value))
    raise bad(type(default).__name__)


def _coerce_network(overrides: Any) -> dict[str, Any]:
    if not isinstance(overrides, dict):
        raise Ct2mriError(f"setting network = {overrides!r}: expected a table of network fields")
    known = {f.name for f in dataclasses.fields(UNetConfig)}
    out = {}
    for key, value in overrides.items():
        if key not in known:
            raise Ct2mriError(f"unknown network setting {key!r} (known: {', '.join(sorted(known))})")
        if key == "attention_levels":
            if not isinstance(value, (list, tuple)):
                raise Ct2mriError(f"setting network.attention_levels = {value!r}: expected a list of integers")
            out[key] = tuple(_coerce(f"network.{key}[{i}]", v, 0) for i, v in enumerate(value))
        else:
            out[key] = _coerce(f"network.{key}", value, getattr(_NETWORK_DEFAULTS, key))
    return out


def config_from_dict(data: dict[str, Any], source: str = "configuration") -> TrainConfig:
    """Build and validate a :class:`TrainConfig`; unknown keys and bad values are one-line errors."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            raise Ct2mriError(f"{source}: unknown training setting {key!r}")
        if key == "network":
            values[key] = _coerce_network(value)
        else:
            values[key] = _coerce(key, value, getattr(_DEFAULTS, key))
    config = TrainConfig(**values)
    check_config(config)
    return config


def network_settings_of(weights: str | Path) -> dict[str, Any]:
    """``preset`` and ``network`` settings that rebuild a weights file's network (for ``--init``)."""
    from ..weights import load_weights

    bundle = load_weights(weights, device="cpu")
    found = bundle.network.config
    preset = bundle.provenance.get("preset")
    preset = preset if preset in PRESETS else "small"
    base = PRESETS[preset]
    overrides = {
        f.name: getattr(found, f.name)
        for f in dataclasses.fields(found)
        if getattr(found, f.name) != getattr(base, f.name) and f.name not in FIXED_NETWORK_FIELDS
    }
    return {"preset": preset, "network": overrides}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a ``.toml`` or ``.json`` configuration file."""
    path = Path(path)
    if not path.is_file():
        raise Ct2mriError(f"{path}: configuration file not found")
    try:
        if path.suffix.lower() == ".toml":
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise Ct2mriError(f"{path}: a configuration file must end in .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Ct2mriError(f"{path}: cannot parse the configuration ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise Ct2mriError(f"{path}: the configuration must be a table of settings")
    return data


def parse_value(text: str) -> Any:
    """A command-line value: anything TOML reads (numbers, true/false, lists, quoted strings), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with ``key=value`` (or ``network.field=value``) overrides applied."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise Ct2mriError(f"--set {item!r}: expected key=value")
        value = parse_value(text.strip())
        if key.startswith("network."):
            sub = out.get("network") or {}
            if not isinstance(sub, dict):
                raise Ct2mriError(f"--set {item!r}: network is not a table")
            sub = dict(sub)
            sub[key.removeprefix("network.")] = value
            out["network"] = sub
        else:
            if key not in _FIELDS:
                raise Ct2mriError(f"--set {item!r}: unknown training setting {key!r}")
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the file at ``path`` (if any), then the overrides; validated."""
    data = read_config_file(path) if path is not None else {}
    source = str(path) if path is not None else "configuration"
    return config_from_dict(apply_overrides(data, overrides), source)


def settings_from_options(
    data_dir: str | Path,
    *,
    config_file: Path | None = None,
    init: Path | None = None,
    preset: str | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
    no_validation: bool = False,
    resumed_config: Path | None = None,
) -> TrainConfig:
    """The settings of ``ct2mri train``'s options, later ones winning: the defaults (with ``init``:
    the weights file's network, unless a preset or network settings are named anywhere), the
    ``config_file``, ``preset`` / ``steps`` / ``batch_size`` / ``device``, ``data_dir``,
    ``no_validation`` and the ``key=value`` ``overrides``.  A resumed run's ``resumed_config`` (its
    ``config.json``, when it exists) lies under all of them."""
    requested: dict[str, Any] = read_config_file(config_file) if config_file is not None else {}
    if init is not None:
        if not init.is_file():
            raise Ct2mriError(f"--init {init}: no such file")
        own_network = (
            preset is not None
            or "network" in requested
            or "preset" in requested
            or any(o.startswith(("network.", "preset=")) for o in overrides)
        )
        requested = {**({} if own_network else network_settings_of(init)), **requested, "init": str(init)}
    for key, value in (("preset", preset), ("steps", steps), ("batch_size", batch_size), ("device", device)):
        if value is not None:
            requested[key] = value
    requested["data_dir"] = str(data_dir)
    if no_validation:
        requested["val_every"] = 0
    requested = apply_overrides(requested, overrides)
    if resumed_config is not None:
        base = read_config_file(resumed_config) if resumed_config.is_file() else {}
        requested = {**base, **requested}
    return config_from_dict(requested, str(config_file) if config_file is not None else "configuration")


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise Ct2mriError(f"setting {name} = {value!r}: {rule}")


def _check_network(c: TrainConfig) -> None:
    """The preset and the network settings, the first things :func:`check_config` checks."""
    _check(c.preset in PRESETS, "preset", c.preset, f"expected one of {', '.join(sorted(PRESETS))}")
    for name in FIXED_NETWORK_FIELDS:
        if name in c.network:
            _check(
                c.network[name] == getattr(_NETWORK_DEFAULTS, name),
                f"network.{name}",
                c.network[name],
                f"fixed by the method at {getattr(_NETWORK_DEFAULTS, name)}",
            )
    net = c.network_config()
    _check(net.base_channels >= 1, "network.base_channels", net.base_channels, "must be >= 1")
    _check(
        len(net.channel_mult) >= 1 and all(m >= 1 for m in net.channel_mult),
        "network.channel_mult",
        net.channel_mult,
        "must be a non-empty list of positive integers",
    )
    _check(net.num_res_blocks >= 1, "network.num_res_blocks", net.num_res_blocks, "must be >= 1")
    _check(
        all(0 <= lv < len(net.channel_mult) for lv in net.attention_levels),
        "network.attention_levels",
        net.attention_levels,
        f"levels run from 0 to {len(net.channel_mult) - 1}",
    )
    _check(0.0 <= net.dropout < 1.0, "network.dropout", net.dropout, "must be in [0, 1)")
    _check(
        net.head_channels >= 1 and net.norm_groups >= 1 and net.transformer_depth >= 1,
        "network",
        c.network,
        "head_channels, norm_groups and transformer_depth must be >= 1",
    )


def check_config(c: TrainConfig) -> None:
    """Raise a one-line :class:`Ct2mriError` for the first invalid value."""
    _check_network(c)
    _check(c.batch_size >= 1, "batch_size", c.batch_size, "must be >= 1")
    factor = c.network_config().downsampling_factor
    _check(
        c.crop == (0, 0) or all(n > 0 and n % factor == 0 for n in c.crop),
        "crop",
        list(c.crop),
        f"must be [0, 0] (whole slices) or two positive multiples of {factor} (the network's downsampling)",
    )
    _check(c.csf_weight >= 0.0, "csf_weight", c.csf_weight, "must be 0 or more")
    _check(0.0 <= c.restyle <= 1.0, "restyle", c.restyle, "must be in [0, 1] (a share of the training windows)")
    _check(0.0 <= c.restyle_strength < 1.0, "restyle_strength", c.restyle_strength, "must be in [0, 1)")
    _check(c.lr > 0, "lr", c.lr, "must be > 0")
    _check(c.lr_schedule in LR_SCHEDULES, "lr_schedule", c.lr_schedule, f"expected one of {', '.join(LR_SCHEDULES)}")
    _check(c.warmup_steps >= 0, "warmup_steps", c.warmup_steps, "must be >= 0")
    _check(0.0 <= c.min_lr_ratio <= 1.0, "min_lr_ratio", c.min_lr_ratio, "must be in [0, 1]")
    _check(all(0.0 <= b < 1.0 for b in c.adam_betas), "adam_betas", c.adam_betas, "each must be in [0, 1)")
    _check(c.weight_decay >= 0, "weight_decay", c.weight_decay, "must be >= 0")
    _check(0.0 <= c.ema_decay < 1.0, "ema_decay", c.ema_decay, "must be in [0, 1)")
    _check(c.ema_every >= 1, "ema_every", c.ema_every, "must be >= 1")
    _check(c.ema_start >= 0, "ema_start", c.ema_start, "must be >= 0")
    _check(c.grad_accumulation >= 1, "grad_accumulation", c.grad_accumulation, "must be >= 1")
    _check(c.grad_clip >= 0, "grad_clip", c.grad_clip, "must be >= 0 (0 disables clipping)")
    _check(c.loss in LOSSES, "loss", c.loss, f"expected one of {', '.join(LOSSES)}")
    _check(c.steps >= 1, "steps", c.steps, "must be >= 1")
    _check(c.seed >= 0, "seed", c.seed, "must be >= 0")
    _check(c.min_brain_voxels >= 1, "min_brain_voxels", c.min_brain_voxels, "must be >= 1")
    _check(c.val_subjects >= 0, "val_subjects", c.val_subjects, "must be >= 0")
    _check(c.log_every >= 1, "log_every", c.log_every, "must be >= 1")
    _check(c.checkpoint_every >= 0, "checkpoint_every", c.checkpoint_every, "must be >= 0")
    _check(c.keep_checkpoints >= 0, "keep_checkpoints", c.keep_checkpoints, "must be >= 0")
    _check(c.val_every >= 0, "val_every", c.val_every, "must be >= 0")
    _check(c.val_steps >= 2, "val_steps", c.val_steps, "must be >= 2")
    _check(c.val_corrections >= 0, "val_corrections", c.val_corrections, "must be >= 0")
    _check(c.val_step_size >= 0, "val_step_size", c.val_step_size, "must be >= 0")
    _check(
        c.val_correction_norm in CORRECTION_NORMS,
        "val_correction_norm",
        c.val_correction_norm,
        f"expected one of {', '.join(CORRECTION_NORMS)}",
    )
    _check(c.val_batch_size >= 0, "val_batch_size", c.val_batch_size, "must be >= 0")
    _check(c.val_slices >= 0, "val_slices", c.val_slices, "must be >= 0 (0: whole volumes)")
    _check(c.num_threads >= 0, "num_threads", c.num_threads, "must be >= 0")
    check_device_spec(c.device)


def resume_conflicts(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Settings that differ between a checkpoint's configuration and the one meant to continue it
    and that may not change (everything outside :data:`RESUMABLE`)."""
    old = saved.to_dict()
    return [k for k, v in new.to_dict().items() if k not in RESUMABLE and old.get(k) != v]
