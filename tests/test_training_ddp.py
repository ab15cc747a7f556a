"""Distributed training on the CPU: two processes launched by torchrun, talking over gloo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ct2mri_cli.cli.app import main
from ct2mri_cli.network import PRESETS, UNet
from ct2mri_cli.training.checkpoint import load_checkpoint
from ct2mri_cli.training.loop import parameters_digest
from ct2mri_cli.training.monitor import read_log
from ct2mri_cli.weights import load_weights
from tests.training_helpers import write_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, capsys):
    data = write_dataset(tmp_path / "pairs", n_cases=3)
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ct2mri_cli",
        "train",
        str(data),
        "-o",
        str(run),
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--set",
        "log_every=1",
        "--set",
        "val_every=3",
        "--set",
        "val_steps=2",
    ]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 processes" in done.stderr
    assert done.stderr.count("wrote ") == 1  # only rank 0 reports and writes

    records = read_log(run / "log.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]  # logged once, by rank 0
    end = records[-1]
    assert end["kind"] == "end" and end["world_size"] == 2
    digests = end["parameters_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1] and end["ranks_identical"] is True

    # the checkpoint loads in a single process and holds exactly those weights
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 3
    net = UNet(PRESETS["tiny"])
    net.load_state_dict(ckpt["model"])
    assert parameters_digest(net) == digests[0]
    assert load_weights(run / "model.safetensors").provenance["world_size"] == 2

    # and a single process can carry the run on
    assert main(["train", str(data), "-o", str(run), "--steps", "4", "--resume", "--set", "num_threads=1"]) == 0
    assert "written by 2 process(es), this run has 1" in capsys.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4
