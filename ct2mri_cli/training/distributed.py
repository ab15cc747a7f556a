"""Distributed data parallel (DDP) plumbing for runs launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and the rendezvous address); a
run without them is a single process.  CUDA processes use NCCL, one GPU each (``cuda:LOCAL_RANK``);
CPU processes use gloo.  Only rank 0 logs, validates and writes files.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from ..device import check_device_spec, resolve_device
from ..errors import Ct2mriError
from ..launcher import process_group_member

# Rank 0 validates and writes checkpoints while the others wait at a barrier.
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """This process's place from torchrun's environment variables; a plain process is rank 0 of 1."""
    process = process_group_member()
    if process is None:
        return DistContext()
    return DistContext(process.rank, process.world_size, process.local_rank)  # type: ignore[arg-type]


def training_device(spec: str, ctx: DistContext) -> torch.device:
    """The device of this process: ``resolve_device`` alone, or ``cuda:LOCAL_RANK`` / CPU under DDP."""
    if not ctx.enabled:
        return resolve_device(spec)
    value = check_device_spec(spec)
    if value == "cpu":
        return torch.device("cpu")
    if value == "mps":
        raise Ct2mriError("--device mps: distributed training runs on CUDA (NCCL) or the CPU (gloo) only")
    if value.startswith("cuda:"):
        raise Ct2mriError(f"--device {spec}: under torchrun each process takes cuda:LOCAL_RANK; use --device cuda")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        if ctx.local_rank >= count:
            raise Ct2mriError(f"LOCAL_RANK {ctx.local_rank}: only {count} CUDA device(s) visible on this node")
        return torch.device("cuda", ctx.local_rank)
    if value == "cuda":
        return resolve_device("cuda")  # raises the one-line "not available" error
    if ctx.is_main:
        return resolve_device("auto")  # warns about the CPU once
    return torch.device("cpu")


def init(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo otherwise)."""
    if not ctx.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)


def shutdown() -> None:
    """Leave the process group once nothing refers to it any more."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # a DDP reducer in a reference cycle would keep the group alive
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def mean_over_ranks(value: float, ctx: DistContext, device: torch.device) -> float:
    """The average of a number over all processes."""
    if not ctx.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def gather(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's ``obj``, in rank order (on every process)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
