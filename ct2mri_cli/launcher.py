"""The variables a launcher sets for each process it starts, read in one place.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (the process's GPU on its machine);
a SLURM array task has ``SLURM_ARRAY_TASK_ID`` / ``_COUNT`` / ``_MIN`` / ``_STEP``; the CPU
threads a process was given are ``OMP_NUM_THREADS`` (torchrun sets it) or ``SLURM_CPUS_PER_TASK``.
Every reader takes the environment as a mapping (the process's own by default), so a caller can
say what a launcher would have set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload

from .errors import Ct2mriError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
SLURM_ARRAY_VARIABLES = (
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_STEP",
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")


@dataclass(frozen=True)
class TorchrunProcess:
    """One process of a torchrun job: ``rank`` of ``world_size``, on GPU ``local_rank`` of its machine."""

    rank: int
    world_size: int
    local_rank: int | None


@dataclass(frozen=True)
class SlurmArrayTask:
    """A SLURM array task: ``task_id`` is the ``index``-th (0-based) of ``count`` tasks."""

    task_id: int
    index: int
    count: int


@overload
def _integer(env: Mapping[str, str], name: str) -> int | None: ...
@overload
def _integer(env: Mapping[str, str], name: str, default: int) -> int: ...
def _integer(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """A variable's integer value; unset or empty gives ``default``."""
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Ct2mriError(f"{name}={value!r} in the environment is not an integer") from None


def local_rank(env: Mapping[str, str] = os.environ) -> int | None:
    """torchrun's ``LOCAL_RANK`` (the process's GPU on its machine), or None outside torchrun."""
    return _integer(env, "LOCAL_RANK")


def torchrun_process(env: Mapping[str, str] = os.environ) -> TorchrunProcess | None:
    """This process's place in a torchrun job, or None outside one (``WORLD_SIZE`` unset or empty);
    a variable that is not an integer is named, and a rank outside the world refused."""
    world = _integer(env, "WORLD_SIZE")
    if world is None:
        return None
    rank = _integer(env, "RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise Ct2mriError(f"RANK={rank} does not fit WORLD_SIZE={world}")
    return TorchrunProcess(rank, world, local_rank(env))


def process_group_member(env: Mapping[str, str] = os.environ) -> TorchrunProcess | None:
    """This process's place in a torchrun job that joins a process group (training), or None when
    ``WORLD_SIZE`` is unset.  A process group cannot form around a doubtful rank, so every variable
    set must be an integer (``RANK`` and ``LOCAL_RANK`` default to 0) and the set is refused whole,
    with every value shown, when one is malformed or the three do not fit together."""
    raw = {name: env.get(name) for name in TORCHRUN_VARIABLES}
    if raw["WORLD_SIZE"] is None:
        return None
    try:
        rank, world, local = [int(value) if value is not None else 0 for value in raw.values()]
    except ValueError:
        raise Ct2mriError(f"torchrun environment is malformed: {raw}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise Ct2mriError(f"torchrun environment is inconsistent: {raw}")
    return TorchrunProcess(rank, world, local)


def in_multiprocess_job(env: Mapping[str, str] = os.environ) -> bool:
    """Whether torchrun started this process as one of several (``WORLD_SIZE`` set to other than 1)."""
    return env.get("WORLD_SIZE", "1") not in ("", "1")


def slurm_array_task(env: Mapping[str, str] = os.environ) -> SlurmArrayTask | None:
    """The SLURM array task this process runs, or None outside an array job."""
    task = _integer(env, "SLURM_ARRAY_TASK_ID")
    if task is None:
        return None
    count = _integer(env, "SLURM_ARRAY_TASK_COUNT")
    if count is None:
        raise Ct2mriError("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT")
    first = _integer(env, "SLURM_ARRAY_TASK_MIN", 0)
    step = _integer(env, "SLURM_ARRAY_TASK_STEP", 1) or 1
    index = (task - first) // step
    if not 0 <= index < count or (task - first) % step:
        raise Ct2mriError(f"SLURM array task {task} does not fit an array of {count} from {first} in steps of {step}")
    return SlurmArrayTask(task, index, count)


def _positive(value: str | None) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number >= 1 else None


def thread_count(env: Mapping[str, str] = os.environ) -> tuple[int, str] | None:
    """(threads, the variable that gave them): the first of :data:`THREAD_VARIABLES` holding a
    positive integer, or None when neither does (a malformed value is passed over)."""
    for name in THREAD_VARIABLES:
        number = _positive(env.get(name))
        if number is not None:
            return number, name
    return None
