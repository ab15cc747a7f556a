"""scripts/merge_datasets.py: one training folder over two preprocess folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.training.data import load_case_volumes, open_dataset
from tests.training_helpers import write_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "merge_datasets.py"


def _merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_merged_cases_read_the_originals(tmp_path):
    first = write_dataset(tmp_path / "mixing", n_cases=3)
    second = write_dataset(tmp_path / "projection", n_cases=2)
    merged = tmp_path / "runs" / "both"
    done = _merge(str(merged), f"mix={first}", f"proj={second}")
    assert done.returncode == 0, done.stderr
    manifest = open_dataset(merged)
    names = ["mix_case00", "mix_case01", "mix_case02", "proj_case00", "proj_case01"]
    assert [e["case"] for e in manifest.cases] == names
    assert [e["subject"] for e in manifest.cases] == names  # unrelated folders: every case its own subject
    original = open_dataset(second)
    got, want = load_case_volumes(manifest, manifest.cases[4]), load_case_volumes(original, original.cases[1])
    for field in ("ct", "mri", "mask"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    assert torch.equal(got.key, want.key)


def test_shared_subjects_join_cases_of_one_name_and_keep_given_subjects(tmp_path):
    first = write_dataset(tmp_path / "mixing", n_cases=2)
    second = write_dataset(tmp_path / "projection", n_cases=2)
    manifest_path = second / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["cases"][1]["subject"] = "patient-7"
    manifest_path.write_text(json.dumps(data))
    done = _merge(str(tmp_path / "both"), f"mix={first}", f"proj={second}", "--shared-subjects")
    assert done.returncode == 0, done.stderr
    subjects = [e["subject"] for e in open_dataset(tmp_path / "both").cases]
    assert subjects == ["case00", "case01", "case00", "patient-7"]


def test_refuses_folders_of_different_preprocessing_and_repeated_cases(tmp_path):
    first = write_dataset(tmp_path / "a", n_cases=1)
    other = write_dataset(tmp_path / "b", n_cases=1, shape=(12, 32, 48))
    refused = _merge(str(tmp_path / "m"), f"x={first}", f"y={other}")
    assert refused.returncode != 0 and "preprocessing settings differ" in refused.stderr
    repeated = _merge(str(tmp_path / "m"), f"x={first}", f"x={first}")
    assert repeated.returncode != 0 and "'x_case00' is already listed" in repeated.stderr
    assert "Traceback" not in refused.stderr + repeated.stderr
    assert not (tmp_path / "m" / "manifest.json").exists()
