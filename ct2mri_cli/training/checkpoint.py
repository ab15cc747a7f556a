"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` dict readable with ``weights_only=True`` (tensors, numbers,
strings, lists, dicts only): format tag, step, network, EMA, optimiser, the effective
configuration, the best validation result, and the random state of every process (Python,
NumPy, torch CPU/CUDA, the noise generator and the window sampler).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..errors import Ct2mriError
from ..io.atomic import atomic_output

CHECKPOINT_FORMAT = "ct2mri-training-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
_PERIODIC = re.compile(r"^step_(\d{8,})\.pt$")


def periodic_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def capture_rng(noise_generator: torch.Generator, sampler_state: dict[str, Any]) -> dict[str, Any]:
    """This process's random state (global generators, noise generator, window sampler)."""
    np_state = cast(tuple, np.random.get_state())  # the legacy form: (name, keys, pos, has_gauss, cached)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "noise": noise_generator.get_state(),
        "sampler": sampler_state,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], noise_generator: torch.Generator) -> dict[str, Any]:
    """Put back what :func:`capture_rng` saved; returns the sampler's state for the sampler."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    np.random.set_state(
        ("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    noise_generator.set_state(state["noise"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    return state["sampler"]


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus the format tag) to ``path`` atomically."""
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    with atomic_output(path) as tmp:
        torch.save(data, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; problems are one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise Ct2mriError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated files, foreign pickles
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Ct2mriError(f"{path}: not a readable ct2mri checkpoint ({first})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise Ct2mriError(f"{path}: not a ct2mri training checkpoint")
    if data.get("version") != CHECKPOINT_VERSION:
        raise Ct2mriError(f"{path}: checkpoint version {data.get('version')!r}; this ct2mri reads {CHECKPOINT_VERSION}")
    return data


def prune_periodic(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest numbered checkpoints in ``folder``."""
    numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _PERIODIC.match(p.name)))
    for _, path in numbered[: max(len(numbered) - keep, 0)]:
        path.unlink(missing_ok=True)


def checkpoint_files(folder: Path) -> list[Path]:
    """The files this module writes in ``folder`` (for ``--force`` clean-up)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name == LAST or _PERIODIC.match(p.name)]
