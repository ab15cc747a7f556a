"""scripts/merge_datasets.py: one training folder over two preprocess folders, subjects kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from training_helpers import write_dataset

from ct2mri_cli.preprocessing.pairs import load_case
from ct2mri_cli.training.data import open_dataset

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "merge_datasets.py"


def _merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_merged_cases_read_the_originals_and_keep_their_subjects(tmp_path):
    first = write_dataset(tmp_path / "mixing", n_cases=3)
    second = write_dataset(tmp_path / "projection", n_cases=2)
    merged = tmp_path / "runs" / "both"
    done = _merge(str(merged), f"mix={first}", f"proj={second}")
    assert done.returncode == 0, done.stderr
    manifest = open_dataset(merged)
    assert [e["case"] for e in manifest.cases] == [
        "mix_case00", "mix_case01", "mix_case02", "proj_case00", "proj_case01"
    ]  # fmt: skip
    # the same synthetic subject under two CT models is one subject: validation holds out both or neither
    assert [e["subject"] for e in manifest.cases] == ["case00", "case01", "case02", "case00", "case01"]
    original = json.loads((second / "manifest.json").read_text())["cases"][1]
    for got, want in zip(load_case(merged, manifest.cases[4]), load_case(second, original)):
        np.testing.assert_array_equal(got, want)


def test_refuses_folders_of_different_preprocessing_and_repeated_cases(tmp_path):
    first = write_dataset(tmp_path / "a", n_cases=1)
    other = write_dataset(tmp_path / "b", n_cases=1, shape=(12, 32, 48))
    refused = _merge(str(tmp_path / "m"), f"x={first}", f"y={other}")
    assert refused.returncode != 0 and "preprocessing settings differ" in refused.stderr
    repeated = _merge(str(tmp_path / "m"), f"x={first}", f"x={first}")
    assert repeated.returncode != 0 and "'x_case00' is already listed" in repeated.stderr
    assert not (tmp_path / "m" / "manifest.json").exists()
