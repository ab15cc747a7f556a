"""scripts/set_default_sampler.py: a copy of a weights file whose default sampler differs, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from helpers import fast_weights
from safetensors import safe_open

from ct2mri_cli.weights import load_weights

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "set_default_sampler.py"


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_only_the_named_sampler_settings_change(tmp_path):
    source, output = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    fast_weights(source, steps=3)
    done = _run(str(source), str(output), "--sampler", "coprediction", "--steps", "5")
    assert done.returncode == 0, done.stderr
    before, after = load_weights(source), load_weights(output)
    assert (after.sampling.mode, after.sampling.steps) == ("coprediction", 5)
    assert after.sampling.corrections == before.sampling.corrections
    assert after.sampling.step_size == before.sampling.step_size
    assert after.sampling.correction_cap == before.sampling.correction_cap
    old, new = _metadata(source), _metadata(output)
    for field in ("network", "bridge", "preprocess", "default_style_key", "tensors_sha256"):
        assert new[field] == old[field], field
    assert json.loads(new["provenance"])["sampling_set_from"] == f"{before.sampling.mode} S={before.sampling.steps}"
    for name, tensor in before.network.state_dict().items():
        assert torch.equal(after.network.state_dict()[name], tensor), name


def test_settings_that_cannot_be_sampled_are_refused(tmp_path):
    source, output = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    fast_weights(source)
    done = _run(str(source), str(output), "--steps", "1")
    assert done.returncode != 0 and done.stderr.strip() == "error: --steps must be at least 2, got 1"
    assert not output.exists()
