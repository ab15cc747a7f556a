"""How many CPU threads a job may use, from what the job was given: ``--threads``, then
``OMP_NUM_THREADS``, then ``SLURM_CPUS_PER_TASK``, then the CPUs the process may run on (its
affinity) capped by the container's CPU quota (cgroup).

It never follows how busy the machine is: the number of threads changes results in their last
digits, and the same job must give the same bytes.  On a machine shared with other busy jobs,
fewer threads than CPUs are much faster (threads that wait on each other lose their turns):
say so with ``--threads``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from .errors import Ct2mriError
from .launcher import thread_count

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs a cgroup quota allows (cgroup v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``), or None when there is no quota."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        if (v1 / "cpu.cfs_quota_us").is_file():
            quota_us = int((v1 / "cpu.cfs_quota_us").read_text())
            return None if quota_us <= 0 else quota_us / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def cpu_budget(
    requested: int | None = None, environ: Mapping[str, str] = os.environ, cgroup_root: Path = CGROUP_ROOT
) -> tuple[int, str]:
    """(threads, where the number came from) for this process."""
    if requested is not None:
        if requested < 1:
            raise Ct2mriError(f"--threads must be at least 1, got {requested}")
        return requested, "--threads"
    given = thread_count(environ)
    if given is not None:
        return given
    try:
        count, source = len(os.sched_getaffinity(0)), "CPU affinity"
    except AttributeError:  # not on Linux
        count, source = os.cpu_count() or 1, "CPU count"
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None and math.ceil(quota) < count:
        count, source = max(1, math.ceil(quota)), "cgroup CPU quota"
    return count, source


def use_threads(requested: int | None = None) -> dict[str, object]:
    """Set torch's intra-op threads from :func:`cpu_budget`; returns what the sidecar records."""
    import torch

    count, source = cpu_budget(requested)
    torch.set_num_threads(count)
    return {"count": count, "source": source}
