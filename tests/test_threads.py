"""CPU threads from what the job was given: --threads, launcher variables, affinity, cgroup quota."""

import os

import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.threads import cgroup_cpu_quota, cpu_budget


def _cgroup_v2(root, text):
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(text)
    return root


def test_cgroup_quotas_are_read_in_both_versions(tmp_path):
    assert cgroup_cpu_quota(_cgroup_v2(tmp_path / "v2", "150000 100000\n")) == 1.5
    assert cgroup_cpu_quota(_cgroup_v2(tmp_path / "none", "max 100000\n")) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path / "v1") == 3.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path / "v1") is None
    assert cgroup_cpu_quota(tmp_path / "missing") is None


def test_what_the_job_was_given_comes_first(tmp_path):
    no_quota = tmp_path / "empty"
    affinity = len(os.sched_getaffinity(0))
    assert cpu_budget(3, {"OMP_NUM_THREADS": "5"}, no_quota) == (3, "--threads")
    assert cpu_budget(None, {"OMP_NUM_THREADS": "5", "SLURM_CPUS_PER_TASK": "4"}, no_quota) == (5, "OMP_NUM_THREADS")
    assert cpu_budget(None, {"OMP_NUM_THREADS": "", "SLURM_CPUS_PER_TASK": "4"}, no_quota) == (4, "SLURM_CPUS_PER_TASK")
    assert cpu_budget(None, {"OMP_NUM_THREADS": "zero"}, no_quota) == (affinity, "CPU affinity")
    with pytest.raises(Ct2mriError, match="--threads must be at least 1"):
        cpu_budget(0, {}, no_quota)


def test_a_container_quota_below_the_cpus_caps_the_threads(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert cpu_budget(None, {}, _cgroup_v2(tmp_path / "half", "50000 100000\n")) == (1, "cgroup CPU quota")
    roomy = _cgroup_v2(tmp_path / "roomy", f"{100000 * (affinity + 4)} 100000\n")
    assert cpu_budget(None, {}, roomy) == (affinity, "CPU affinity")
