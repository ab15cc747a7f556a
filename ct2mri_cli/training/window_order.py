"""The order in which training windows are visited: shuffled per epoch, sharded over processes.

Each epoch is a permutation of all windows drawn from ``(seed, epoch)``, identical on every
process; process ``rank`` of ``world_size`` takes every ``world_size``-th entry starting at
``rank`` (the list is first extended cyclically to a multiple of ``world_size``), so the shards
are disjoint and equally long.  Left-right flips come from a per-process generator.  The whole
state is (epoch, position, flip generator), which a checkpoint stores to resume exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (e.g. the run's seed, the rank and a purpose tag)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


FLIP_TAG = 1
CROP_TAG = 2
RESTYLE_TAG = 3


class WindowOrder:
    """Yields (window indices, flip flags) batches for one process."""

    def __init__(self, num_windows: int, seed: int, rank: int = 0, world_size: int = 1, flip: bool = True) -> None:
        if num_windows < 1:
            raise ValueError("there are no windows to sample")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside a world of {world_size}")
        self.num_windows = num_windows
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.flip = flip
        self.epoch = 0
        self.position = 0
        self.flip_generator = torch.Generator().manual_seed(derive_seed(seed, rank, FLIP_TAG))
        self._shard: torch.Tensor | None = None
        self._shard_epoch = -1

    def shard(self, epoch: int) -> torch.Tensor:
        """This process's window indices for ``epoch``, in visiting order."""
        if epoch != self._shard_epoch:
            order = np.random.default_rng(np.random.SeedSequence([self.seed, epoch])).permutation(self.num_windows)
            total = -(-self.num_windows // self.world_size) * self.world_size
            order = np.resize(order, total)  # cyclic extension to a multiple of the world size
            self._shard = torch.from_numpy(order[self.rank :: self.world_size].astype(np.int64))
            self._shard_epoch = epoch
        assert self._shard is not None
        return self._shard

    def next(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next ``batch_size`` indices (crossing into the next epoch as needed) and flip flags."""
        parts = []
        needed = batch_size
        while needed:
            shard = self.shard(self.epoch)
            if self.position >= shard.numel():
                self.epoch += 1
                self.position = 0
                continue
            take = shard[self.position : self.position + needed]
            parts.append(take)
            self.position += take.numel()
            needed -= take.numel()
        indices = torch.cat(parts)
        flips = torch.rand(batch_size, generator=self.flip_generator) < 0.5 if self.flip else None
        return indices, flips

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "flip_rng": self.flip_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.flip_generator.set_state(state["flip_rng"])
