"""Shards of a cohort: which share of the cases this process runs.

The field's conventions, composed: ``--shard K/N`` (1-based, as FastSurfer's ``--batch K/N``) or,
without it, a SLURM array task (``SLURM_ARRAY_TASK_ID`` / ``_COUNT`` / ``_MIN`` / ``_STEP``); under
``torchrun`` (``RANK`` / ``WORLD_SIZE``) each process takes a share of that share, and
``LOCAL_RANK`` names its GPU.  Cases are split by name: sorted, then dealt out in turn, so every
process given the same case list (and every rerun) makes the same split, and shares differ in
size by one case at most.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import Ct2mriError
from .launcher import slurm_array_task, torchrun_process

Item = TypeVar("Item")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Share ``index`` (0-based) of ``count``; ``source`` says where it came from."""

    index: int = 0
    count: int = 1
    source: str = "whole cohort"
    local_rank: int | None = None

    @property
    def label(self) -> str:
        """``K-of-N`` (1-based), for file names and messages."""
        return f"{self.index + 1}-of-{self.count}"

    def select(self, items: Sequence[Item], name_of: Callable[[Item], str]) -> list[Item]:
        """This shard's items, in their given order."""
        if self.count == 1:
            return list(items)
        order = sorted(range(len(items)), key=lambda i: name_of(items[i]))
        mine = {i for position, i in enumerate(order) if position % self.count == self.index}
        return [item for i, item in enumerate(items) if i in mine]


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N."""
    match = _SHARD.match(text)
    if not match:
        raise Ct2mriError(f"--shard {text!r}: expected K/N, e.g. --shard 1/4")
    k, n = int(match.group(1)), int(match.group(2))
    if not 1 <= k <= n:
        raise Ct2mriError(f"--shard {text}: K must lie between 1 and N")
    return Shard(k - 1, n, f"--shard {k}/{n}")


def _slurm_array(env: Mapping[str, str]) -> Shard | None:
    task = slurm_array_task(env)
    if task is None:
        return None
    return Shard(task.index, task.count, f"SLURM array task {task.task_id} ({task.index + 1} of {task.count})")


def resolve_shard(option: str | None, env: Mapping[str, str] = os.environ) -> Shard:
    """This process's shard: ``--shard`` or the SLURM array, each split further among torchrun's processes."""
    outer = parse_shard(option) if option else (_slurm_array(env) or Shard())
    process = torchrun_process(env)
    if process is None or process.world_size == 1:
        local = process.local_rank if process else None
        return Shard(outer.index, outer.count, outer.source, local)
    rank, world = process.rank, process.world_size
    source = f"torchrun rank {rank} of {world}" + ("" if outer.count == 1 else f" within {outer.source}")
    return Shard(outer.index * world + rank, outer.count * world, source, process.local_rank)
