"""Cohorts through ``ct2mri translate``: shards, SLURM arrays, torchrun, status files, restarts, case lists."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from ct2mri_cli.cli.app import main
from ct2mri_cli.launcher import SLURM_ARRAY_VARIABLES, TORCHRUN_VARIABLES
from tests.helpers import fast_weights

CASES = [f"p{i}" for i in range(5)]
LAUNCHER_VARIABLES = SLURM_ARRAY_VARIABLES + TORCHRUN_VARIABLES


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """These tests set the launchers' variables themselves (the suite may run inside an array job)."""
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five different phantom CTs in a folder, a fast network, and the unsharded run's outputs."""
    from tests.conftest import make_head_phantom

    root = tmp_path_factory.mktemp("cohort")
    (root / "cases").mkdir()
    for i, case in enumerate(CASES):
        phantom = make_head_phantom(spacing=(3.0, 3.0, 3.0), seed=i)
        nib.save(nib.Nifti1Image(phantom.hu.astype(np.int16), phantom.affine), str(root / "cases" / f"{case}.nii.gz"))
    weights = fast_weights(root / "w.safetensors")
    assert (
        main(
            [
                "-q",
                "translate",
                str(root / "cases"),
                "-o",
                str(root / "whole"),
                "--weights",
                str(weights),
                "--device",
                "cpu",
                "--no-pipeline",
            ]
        )
        == 0
    )
    return root, weights


def _base(cohort):
    root, weights = cohort
    return ["-q", "translate", str(root / "cases"), "--weights", str(weights), "--device", "cpu"]


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: np.asarray(nib.load(str(p)).dataobj).tobytes() for p in sorted(folder.glob("*_synT1.nii.gz"))}


def _status_lines(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("ct2mri_status_*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _assert_like_the_whole_run(cohort, folder: Path) -> None:
    expected = _outputs(cohort[0] / "whole")
    assert sorted(expected) == [f"{c}_synT1.nii.gz" for c in CASES]
    assert _outputs(folder) == expected  # every case once, bit for bit
    lines = _status_lines(folder)
    assert sorted(e["case"] for e in lines) == CASES and all(e["state"] == "done" for e in lines)


def test_the_pipelined_run_equals_the_sequential_one(cohort, tmp_path):
    assert main(_base(cohort) + ["-o", str(tmp_path / "out"), "--pipeline"]) == 0
    _assert_like_the_whole_run(cohort, tmp_path / "out")


def test_two_shards_write_every_case_once_and_report_their_status(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_base(cohort) + ["-o", str(out), "--shard", "1/2"]) == 0
    first = _outputs(out)
    assert len(first) == 3  # sorted p0..p4, every other one: p0, p2, p4
    capsys.readouterr()
    assert main(["translate", "--status", str(out)]) == 1  # shard 2 has not run
    report = capsys.readouterr().out
    assert "shard 2-of-2: no status file" in report and "3 cases: 3 done" in report
    assert main(_base(cohort) + ["-o", str(out), "--shard", "2/2"]) == 0
    _assert_like_the_whole_run(cohort, out)
    assert sorted(p.name for p in out.glob("ct2mri_status_*")) == [
        "ct2mri_status_1-of-2.jsonl",
        "ct2mri_status_2-of-2.jsonl",
    ]
    capsys.readouterr()
    assert main(["translate", "--status", str(out)]) == 0
    assert "5 cases: 5 done (0 with scan-check notes), 0 failed" in capsys.readouterr().out


def test_a_slurm_array_needs_no_arithmetic(cohort, tmp_path, monkeypatch):
    out = tmp_path / "out"
    for task in ("1", "2"):  # --array=1-2
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
        monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
        assert main(_base(cohort) + ["-o", str(out)]) == 0
    _assert_like_the_whole_run(cohort, out)


def test_a_named_output_is_translated_whole_inside_an_array_job(cohort, tmp_path, monkeypatch, capsys):
    root, weights = cohort
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    out = tmp_path / "p1_t1.nii.gz"
    assert (
        main(
            [
                "-q",
                "translate",
                str(root / "cases" / "p1.nii.gz"),
                str(out),
                "--weights",
                str(weights),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert np.asarray(nib.load(str(out)).dataobj).tobytes() == _outputs(root / "whole")["p1_synT1.nii.gz"]
    # a shard with nothing to do still reports, so --status sees it ran
    many = tmp_path / "many"
    assert (
        main(
            [
                "translate",
                str(root / "cases" / "p1.nii.gz"),
                str(root / "cases" / "p2.nii.gz"),
                "-o",
                str(many),
                "--weights",
                str(weights),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "shard 4 of 4 (SLURM array task 3 (4 of 4)): 0 of 2 cases; nothing to do" in capsys.readouterr().err
    assert (many / "ct2mri_status_4-of-4.jsonl").read_text() == ""


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    # torchrun sets one thread per process unless told; CPU results are bit-identical only for
    # the same thread count as the run compared with
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    return env


@pytest.mark.slow
def test_torchrun_gives_each_process_a_share(cohort, tmp_path):
    root, weights = cohort
    out = tmp_path / "out"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            "-m",
            "ct2mri_cli",
            "-q",
            "translate",
            str(root / "cases"),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
        ],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        env=_environment(),
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    _assert_like_the_whole_run(cohort, out)
    assert sorted(p.name for p in out.glob("ct2mri_status_*")) == [
        "ct2mri_status_1-of-2.jsonl",
        "ct2mri_status_2-of-2.jsonl",
    ]


@pytest.mark.slow
def test_a_killed_shard_restarts_with_skip_existing_and_rewrites_nothing(cohort, tmp_path):
    root, weights = cohort
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "ct2mri_cli",
        "-q",
        "translate",
        str(root / "cases"),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--shard",
        "1/2",
        "--steps",
        "40",
    ]
    process = subprocess.Popen(args, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600  # a loaded machine can take minutes over its first case
    while not list(out.glob("*_synT1.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    done_before = sorted(p.name for p in out.glob("*_synT1.json"))
    assert 1 <= len(done_before) < 3, done_before  # killed while its share was unfinished
    report = subprocess.run(
        [sys.executable, "-m", "ct2mri_cli", "translate", "--status", str(out)],
        env=_environment(),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )
    assert report.returncode == 1  # cases it never reached are pending, not forgotten
    assert f"3 cases: {len(done_before)} done" in report.stdout and f"{3 - len(done_before)} pending" in report.stdout
    rerun = subprocess.run(
        args + ["--skip-existing"],
        env=_environment(),
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=3600,
    )  # a guard against a hang, not a time limit
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name in done_before:
        for path in (out / name, out / name.replace(".json", ".nii.gz")):
            assert path.stat().st_mtime_ns == finished[path.name]  # finished cases are not rewritten
    lines = _status_lines(out)
    assert sorted(e["case"] for e in lines) == ["p0", "p2", "p4"] and all(e["state"] == "done" for e in lines)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_asking_a_finished_run_for_qc_pictures_rewrites_nothing(cohort, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(cohort[0] / "whole", out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(_base(cohort)[1:] + ["-o", str(out), "--skip-existing", "--qc", str(out / "qc")]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "0 translated" in err and "5 skipped" in err and "not made (a finished case is not redone" in err
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    status = "ct2mri_status_1-of-1.jsonl"
    assert {k: v for k, v in after.items() if k != status} == {k: v for k, v in before.items() if k != status}
    lines = _status_lines(out)
    assert sorted(e["case"] for e in lines) == CASES and all(e["state"] == "done" for e in lines)


def test_status_counts_each_case_once_across_old_and_new_splits(tmp_path, capsys):
    def write(name, states):
        lines = [
            json.dumps({"case": c, "state": s, "checks": [], "error": "boom" if s == "failed" else None})
            for c, s in states.items()
        ]
        (tmp_path / name).write_text("".join(line + "\n" for line in lines))

    write("ct2mri_status_1-of-2.jsonl", {"a": "done", "b": "done"})
    write("ct2mri_status_2-of-2.jsonl", {"c": "done"})
    write("ct2mri_status_1-of-1.jsonl", {"a": "done", "b": "done", "c": "pending"})
    assert main(["translate", "--status", str(tmp_path)]) == 0
    assert "3 cases: 3 done (0 with scan-check notes), 0 failed, 0 pending" in capsys.readouterr().out
    for old in ("ct2mri_status_1-of-2.jsonl", "ct2mri_status_2-of-2.jsonl"):
        (tmp_path / old).unlink()
    write("ct2mri_status_1-of-1.jsonl", {"a": "done", "b": "failed", "c": "pending"})
    assert main(["translate", "--status", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "3 cases: 1 done" in out and "1 failed, 1 pending" in out and "pending c" in out


def test_case_lists_as_text_and_csv(cohort, tmp_path):
    root, weights = cohort
    listing = tmp_path / "cases.txt"
    listing.write_text(
        f"# two cases\n{root / 'cases' / 'p1.nii.gz'}\n\n{os.path.relpath(root / 'cases' / 'p3.nii.gz', tmp_path)}\n"
    )
    base = ["-q", "translate", "--weights", str(weights), "--device", "cpu"]
    assert main(base + ["--list", str(listing), "-o", str(tmp_path / "a")]) == 0
    expected = _outputs(root / "whole")
    assert _outputs(tmp_path / "a") == {k: expected[k] for k in ("p1_synT1.nii.gz", "p3_synT1.nii.gz")}

    table = tmp_path / "cases.csv"
    table.write_text(
        "case,ct,output,style\n"
        f"first,{root / 'cases' / 'p0.nii.gz'},named/first_t1.nii.gz,\n"
        f"second,{root / 'cases' / 'p2.nii.gz'},,colin27\n"
    )
    assert main(base + ["--list", str(table), "-o", str(tmp_path / "b")]) == 0
    first = np.asarray(nib.load(str(tmp_path / "named" / "first_t1.nii.gz")).dataobj)
    assert first.tobytes() == expected["p0_synT1.nii.gz"]  # the default style, written where the row says
    second = json.loads((tmp_path / "b" / "second_synT1.json").read_text())
    assert second["style_source"] == "bundled:colin27"
    glob_run = main(base + [str(root / "cases" / "p[01].nii.gz"), "-o", str(tmp_path / "c")])
    assert glob_run == 0 and sorted(_outputs(tmp_path / "c")) == ["p0_synT1.nii.gz", "p1_synT1.nii.gz"]


def test_bad_case_lists_fail_with_one_line(cohort, tmp_path, capsys):
    _, weights = cohort
    base = ["translate", "--weights", str(weights), "--device", "cpu", "-o", str(tmp_path / "o")]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    assert main(base + ["--list", str(empty)]) == 1
    assert "the case list names no inputs" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("name,file\na,b\n")
    assert main(base + ["--list", str(bad)]) == 1
    assert "needs the columns case, ct" in capsys.readouterr().err
    assert main(base + [str(tmp_path / "nothing*.nii.gz")]) == 1
    assert "matches no file" in capsys.readouterr().err
    assert main(["translate", "--status", str(tmp_path)]) == 1
    assert "no status files" in capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_side_by_side_share_the_cases(cohort, tmp_path):
    root, weights = cohort
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "ct2mri_cli",
        "translate",
        str(root / "cases"),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--steps",
        "60",
    ]
    runs = [
        subprocess.Popen(
            args, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8", errors="replace"
        )
        for _ in range(2)
    ]
    results = [run.communicate(timeout=3600) for run in runs]  # a guard against a hang, not a time limit
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in results]
    summaries = [" ".join(err.split()) for _, err in results]
    translated = [int(re.search(r"(\d+) translated", s).group(1)) for s in summaries]
    assert sum(translated) == len(CASES), summaries  # each case once
    assert all("left to it" in s or "meanwhile" in s or n == len(CASES) for s, n in zip(summaries, translated))
    lines = _status_lines(out)
    assert sorted(e["case"] for e in lines) == CASES and all(e["state"] == "done" for e in lines)
    assert sorted(p.name for p in out.glob("*_synT1.json")) == [f"{c}_synT1.json" for c in CASES]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no claim or temporary left


def test_ctrl_c_says_so_and_leaves_no_partial_file(cohort, tmp_path):
    root, weights = cohort
    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ct2mri_cli",
            "translate",
            str(root / "cases"),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "--device",
            "cpu",
            "--steps",
            "400",
        ],
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        # a shell's background job ignores SIGINT, and its children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 600  # a guard against a hang
    while not list(out.glob("ct2mri_status_*.jsonl")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted") and "Traceback" not in err, err[-2000:]
    assert not list(out.glob("*_synT1.nii.gz")) and not list(out.glob(".*"))  # no partial output, no claim left


def test_a_run_of_skips_does_not_speak_of_the_device(cohort, tmp_path, capsys):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(cohort[0] / "whole", out)
    base = [a for a in _base(cohort)[1:] if a not in ("--device", "cpu")]
    assert main(base + ["-o", str(out), "--skip-existing"]) == 0
    err = capsys.readouterr().err
    assert "5 skipped" in " ".join(err.split()) and "no GPU found" not in err
    if not torch.cuda.is_available():
        (out / "p0_synT1.nii.gz").unlink()
        assert main(base + ["-o", str(out), "--skip-existing"]) == 0
        err = capsys.readouterr().err
        assert "1 translated" in " ".join(err.split()) and err.count("no GPU found") == 1


def test_trust_maps_and_the_report_of_a_folder(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            _base(cohort)[1:] + ["-o", str(out), "--trust-map", str(out / "trust"), "--qc", str(out / "qc"), "--report"]
        )
        == 0
    )
    err = " ".join(capsys.readouterr().err.split())
    assert f"wrote {out / 'report.html'}" in err
    page = (out / "report.html").read_text()
    for case in CASES:
        sidecar = json.loads((out / f"{case}_synT1.json").read_text())
        trust_map = nib.load(str(out / "trust" / f"{case}_trust.nii.gz"))
        output = nib.load(str(out / f"{case}_synT1.nii.gz"))
        np.testing.assert_array_equal(trust_map.affine, output.affine)
        assert sidecar["trust"]["map"] == str(out / "trust" / f"{case}_trust.nii.gz")
        assert sidecar["qc"] == str(out / "qc" / f"{case}_qc.png") and case in page
    root, weights = cohort
    assert (
        main(
            [
                "translate",
                str(root / "cases" / "p0.nii.gz"),
                str(tmp_path / "one.nii.gz"),
                "--weights",
                str(weights),
                "--report",
            ]
        )
        == 1
    )
    assert "--report writes the QC page of an output folder" in capsys.readouterr().err
