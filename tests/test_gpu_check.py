"""benchmarks/gpu_check.sh: on a machine without CUDA it says so and exits 0."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run for minutes")
def test_the_gpu_check_exits_cleanly_without_cuda():
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no CUDA device: nothing to check") and done.stderr == ""
