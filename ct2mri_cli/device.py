"""Turning a ``--device`` option (auto, cpu, cuda, cuda:N, mps) into a torch device."""

from __future__ import annotations

import re

import torch

from .errors import Ct2mriError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_CUDA = re.compile(r"^cuda(?::(\d+))?$")
CPU_FALLBACK = "no GPU found (CUDA or MPS): running on the CPU, which is much slower"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def check_device_spec(spec: str) -> str:
    """Normalise a device option's spelling, or raise a one-line error; no hardware is probed."""
    value = spec.strip().lower()
    if value in ("auto", "cpu", "mps") or _CUDA.match(value):
        return value
    raise Ct2mriError(f"--device {spec!r}: expected {DEVICE_CHOICES}")


def resolve_device(spec: str, announce: bool = True) -> torch.device:
    """The device named by ``spec``; ``auto`` prefers CUDA, then MPS, then the CPU (with the
    :data:`CPU_FALLBACK` notice unless ``announce`` is false: a caller that may have no work says it later).

    An explicitly requested device that is not usable is a one-line :class:`Ct2mriError`.
    """
    value = check_device_spec(spec)
    if value == "cpu":
        return torch.device("cpu")
    if value == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        if announce:
            from .reporting import notice

            notice(CPU_FALLBACK)
        return torch.device("cpu")
    if value == "mps":
        if not _mps_available():
            raise Ct2mriError("--device mps: the MPS backend is not available on this machine")
        return torch.device("mps")
    match = _CUDA.match(value)
    assert match is not None
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise Ct2mriError(f"--device {spec}: CUDA is not available (torch {torch.__version__}, {build})")
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise Ct2mriError(f"--device {spec}: only {count} CUDA device(s) visible (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)
