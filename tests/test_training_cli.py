import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.cli.app import main
from ct2mri_cli.training.monitor import read_log
from tests.training_helpers import write_dataset

FAST = ["--preset", "tiny", "--device", "cpu", "--batch-size", "2", "--set", "num_threads=1", "--set", "val_steps=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "pairs", n_cases=2)


def _fails(capsys, argv, message):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    last = err.splitlines()[-1]
    assert last.startswith("error:") and message in last, err  # the reason is one line
    return last


def test_bad_configurations_fail_before_training(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    _fails(capsys, ["train", str(tmp_path / "missing"), "-o", str(run), *FAST], "data folder not found")
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(run), *FAST, "--set", "colour=red"],
        "unknown training setting 'colour'",
    )
    _fails(capsys, ["train", str(dataset), "-o", str(run), *FAST, "--steps", "0"], "setting steps = 0: must be >= 1")
    _fails(capsys, ["train", str(dataset), "-o", str(run), *FAST, "--set", "lr=-1"], "setting lr = -1")
    _fails(capsys, ["train", str(dataset), "-o", str(run), *FAST, "--device", "gpu"], "expected auto, cpu")
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(run), *FAST, "--config", str(tmp_path / "none.toml")],
        "configuration file not found",
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    _fails(
        capsys, ["train", str(dataset), "-o", str(run), *FAST, "--config", str(bad)], "unknown training setting 'stepz'"
    )
    _fails(capsys, ["train", str(dataset), "-o", str(run), *FAST, "--resume"], "nothing to resume")
    (tmp_path / "a_file").write_text("in the way")
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(tmp_path / "a_file" / "run"), *FAST],
        "a file of that name is in the way",
    )

    empty = write_dataset(tmp_path / "empty", n_cases=2, empty_masks=True)
    _fails(capsys, ["train", str(empty), "-o", str(run), *FAST], "no training slice holds brain")
    mismatched = write_dataset(tmp_path / "mismatched", n_cases=2)
    nib.save(nib.Nifti1Image(np.zeros((32, 16, 12), np.float32), np.eye(4)), str(mismatched / "case00_ct.nii.gz"))
    _fails(capsys, ["train", str(mismatched), "-o", str(run), *FAST], "differs from the manifest's (12, 32, 32)")
    missing = write_dataset(tmp_path / "missing_file", n_cases=2)
    (missing / "case01_mask.nii.gz").unlink()
    _fails(capsys, ["train", str(missing), "-o", str(run), *FAST], "case01_mask.nii.gz: missing")
    assert not run.exists()  # nothing was written for any of them


def test_train_resume_force_and_quiet(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    config = tmp_path / "run.toml"
    config.write_text("log_every = 1\nval_every = 2\ncheckpoint_every = 2\n[network]\nbase_channels = 8\n")
    argv = ["train", str(dataset), "-o", str(run), *FAST, "--config", str(config), "--steps", "2"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "train" in err and "samples/s" in err and "wrote" in err
    assert "validating 1 held-out case(s), 8 middle slices" in err and "validation PSNR" in err
    saved = json.loads((run / "config.json").read_text())
    assert saved["network"] == {"base_channels": 8} and saved["steps"] == 2 and saved["val_every"] == 2

    _fails(capsys, argv, "holds a training run (use --resume to continue it or --force to start over)")
    _fails(capsys, [*argv, "--resume", "--set", "lr=1e-3", "--steps", "3"], "cannot change lr")
    _fails(capsys, [*argv, "--resume"], "already has 2 steps")

    # resuming takes the saved settings (the network override included) without repeating them
    assert main(["-q", "train", str(dataset), "-o", str(run), "--steps", "3", "--resume"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    records = read_log(run / "log.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]

    (run / "stray.txt").write_text("mine")
    assert main(["-q", *argv, "--force"]) == 0
    records = read_log(run / "log.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2]
    assert (run / "stray.txt").read_text() == "mine"  # --force removes only the run's own files
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "step_00000002.pt"]


def test_init_starts_a_new_run_from_a_weights_file(dataset, tmp_path, capsys):
    """A second stage starts from the first stage's exported weights: its network, the data's
    preprocessing, and a record of where it started."""
    import torch

    from ct2mri_cli.weights import load_weights

    first = tmp_path / "first"
    assert (
        main(["-q", "train", str(dataset), "-o", str(first), *FAST, "--steps", "2", "--set", "network.base_channels=8"])
        == 0
    )
    weights = first / "model.safetensors"
    exported = load_weights(weights)

    second = tmp_path / "second"
    fast_without_preset = [a for a in FAST if a not in ("--preset", "tiny")]
    assert (
        main(
            [
                "-q",
                "train",
                str(dataset),
                "-o",
                str(second),
                *fast_without_preset,
                "--steps",
                "1",
                "--set",
                "lr=1e-12",
                "--set",
                "ema_decay=0",
                "--init",
                str(weights),
            ]
        )
        == 0
    )
    saved = json.loads((second / "config.json").read_text())
    assert saved["init"] == str(weights) and saved["preset"] == "tiny" and saved["network"] == {"base_channels": 8}
    resumed = load_weights(second / "model.safetensors")
    assert resumed.network.config == exported.network.config
    # one step at a learning rate of 1e-12 barely moves the weights: the run started from the file
    for name, tensor in exported.network.state_dict().items():
        torch.testing.assert_close(resumed.network.state_dict()[name], tensor, atol=1e-6, rtol=0)
    assert resumed.provenance["init"] == {"file": "model.safetensors", "sha256": exported.sha256, "training_steps": 2}
    assert main(["-q", "train", str(dataset), "-o", str(second), "--steps", "2", "--resume"]) == 0
    assert (
        load_weights(second / "model.safetensors").provenance["init"] == resumed.provenance["init"]
    )  # kept on resuming

    from_scratch = tmp_path / "scratch"
    assert (
        main(
            [
                "-q",
                "train",
                str(dataset),
                "-o",
                str(from_scratch),
                *FAST,
                "--steps",
                "1",
                "--set",
                "network.base_channels=8",
                "--set",
                "lr=1e-12",
                "--set",
                "ema_decay=0",
            ]
        )
        == 0
    )
    scratch = load_weights(from_scratch / "model.safetensors").network.state_dict()
    assert any(not torch.allclose(scratch[n], t, atol=1e-6) for n, t in exported.network.state_dict().items())

    other = tmp_path / "other_grid"
    shutil.copytree(dataset, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["preprocess"]["spacing_mm"] = 3.0
    (other / "manifest.json").write_text(json.dumps(manifest))
    _fails(
        capsys,
        ["train", str(other), "-o", str(tmp_path / "y"), *fast_without_preset, "--steps", "1", "--init", str(weights)],
        "the weights were trained on data preprocessed otherwise: spacing_mm 2.0 (data: 3.0)",
    )

    # --preset names the run's own network, which must then match the file's
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(tmp_path / "x"), *FAST, "--steps", "1", "--init", str(weights)],
        "its network differs from the run's: base_channels 8 (run: ",
    )
    _fails(
        capsys,
        [
            "train",
            str(dataset),
            "-o",
            str(tmp_path / "x"),
            *FAST,
            "--steps",
            "1",
            "--init",
            str(tmp_path / "none.safetensors"),
        ],
        "none.safetensors: no such file",
    )


def test_the_logged_learning_rate_follows_the_schedule(dataset, tmp_path):
    run = tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "train",
                str(dataset),
                "-o",
                str(run),
                *FAST,
                "--steps",
                "5",
                "--set",
                "log_every=1",
                "--set",
                "lr=1e-3",
                "--set",
                "lr_schedule=cosine",
                "--set",
                "warmup_steps=2",
                "--set",
                "val_every=0",
            ]
        )
        == 0
    )
    logged = [r["lr"] for r in read_log(run / "log.jsonl") if r["kind"] == "train"]
    assert logged == pytest.approx([5e-4, 1e-3, 0.75e-3, 0.25e-3, 0.0], abs=1e-12)


def test_random_crops_train_on_part_of_each_slice_and_resume_exactly(dataset, tmp_path, capsys):
    """Crops of 16 x 16 from 32 x 32 slices: the network trains on them, validation and the
    exported model work on whole slices, and a resumed run draws the same crops (same weights)."""
    from ct2mri_cli.training.loop import parameters_digest
    from ct2mri_cli.weights import load_weights

    args = [
        "-q",
        "train",
        str(dataset),
        *FAST,
        "--set",
        "crop=[16,16]",
        "--set",
        "val_every=2",
        "--set",
        "checkpoint_every=2",
    ]
    assert main([*args, "-o", str(tmp_path / "whole"), "--steps", "4"]) == 0
    assert main([*args, "-o", str(tmp_path / "split"), "--steps", "2"]) == 0
    assert main([*args, "-o", str(tmp_path / "split"), "--steps", "4", "--resume"]) == 0
    whole, split = (load_weights(tmp_path / run / "model.safetensors") for run in ("whole", "split"))
    assert parameters_digest(whole.network) == parameters_digest(split.network)
    validation = [r for r in read_log(tmp_path / "whole" / "log.jsonl") if r["kind"] == "val"]
    assert validation and all(np.isfinite(r["psnr"]) for r in validation)  # validated on whole 32 x 32 slices
    no_crop = tmp_path / "plain"
    assert main(["-q", "train", str(dataset), *FAST, "-o", str(no_crop), "--steps", "4", "--set", "val_every=2"]) == 0
    assert parameters_digest(load_weights(no_crop / "model.safetensors").network) != parameters_digest(whole.network)
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(tmp_path / "x"), *FAST, "--steps", "1", "--set", "crop=[9,16]"],
        "setting crop = [9, 16]: must be [0, 0] (whole slices) or two positive multiples of",
    )
    _fails(
        capsys,
        ["train", str(dataset), "-o", str(tmp_path / "x"), *FAST, "--steps", "1", "--set", "crop=[64,16]"],
        "larger than the data's 32x32 slices",
    )


def test_memory_mapped_windows_train_like_windows_in_memory(dataset, tmp_path):
    import torch

    from ct2mri_cli.training.config import TrainConfig
    from ct2mri_cli.training.data import load_training_data
    from ct2mri_cli.training.loop import parameters_digest
    from ct2mri_cli.weights import load_weights

    config = TrainConfig(data_dir=str(dataset), preset="tiny")
    in_memory = load_training_data(config)
    mapped = load_training_data(config, spill_to=tmp_path / "spill")
    for kind in ("ct", "mri"):
        array = getattr(mapped.train, kind)
        assert torch.equal(array, getattr(in_memory.train, kind))
        assert (tmp_path / "spill" / f"{kind}.f16").stat().st_size == array.numel() * 2  # float16 on disk
    assert sorted(p.name for p in (tmp_path / "spill").iterdir()) == ["ct.f16", "mri.f16"]  # no temporary left

    args = ["-q", "train", str(dataset), *FAST, "--steps", "3", "--set", "val_every=0"]
    assert main([*args, "-o", str(tmp_path / "memory")]) == 0
    assert main([*args, "-o", str(tmp_path / "mapped"), "--set", "memory_map=true"]) == 0
    assert (tmp_path / "mapped" / "windows" / "process-0" / "ct.f16").is_file()
    digests = [
        parameters_digest(load_weights(tmp_path / run / "model.safetensors").network) for run in ("memory", "mapped")
    ]
    assert digests[0] == digests[1]


def test_no_validation_switch(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(dataset), "-o", str(run), *FAST, "--steps", "2", "--no-validation"]) == 0
    err = capsys.readouterr().err
    assert "validating" not in err and "validation PSNR" not in err
    assert json.loads((run / "config.json").read_text())["val_every"] == 0
    assert not [r for r in read_log(run / "log.jsonl") if r["kind"] == "val"]
    assert (run / "model.safetensors").is_file() and not (run / "best.safetensors").exists()
