"""``ct2mri translate`` end to end: the real head CT, batches, provenance and every bad input."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ct2mri_cli.cli.app import main
from tests.helpers import fast_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return fast_weights(tmp_path_factory.mktemp("w") / "fast.safetensors")


@pytest.fixture(scope="module")
def head_ct_nifti(tmp_path_factory, head_ct):
    """The real head CT written as NIfTI (the common input format)."""
    from ct2mri_cli.io.volumes import write_nifti

    path = tmp_path_factory.mktemp("ct") / "cranium.nii.gz"
    write_nifti(head_ct.data.astype(np.int16), path, head_ct, dtype=np.int16)
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def _t1_by_ct_tissue(hu, affine, t1, brain):
    """Mean synthetic T1 over the CT's own tissue classes inside the brain, by smoothed HU:
    CSF below 12, white-matter-like 18-28 and grey-matter-like 34-45 (grey matter is the denser)."""
    import SimpleITK as sitk

    from ct2mri_cli.io.images import array_from_sitk, sitk_from_array

    smooth = array_from_sitk(sitk.SmoothingRecursiveGaussian(sitk_from_array(hu, affine), 1.5))
    classes = [smooth < 12, (smooth >= 18) & (smooth < 28), (smooth >= 34) & (smooth < 45)]
    assert all((brain & c).sum() > 5000 for c in classes)
    return tuple(float(t1[brain & c].mean()) for c in classes)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_head_ct_end_to_end(tmp_path, head_ct_nifti):
    """The bundled model (few steps, to stay quick) on the real head CT."""
    out = tmp_path / "mri.nii.gz"
    args = [
        "-q",
        "translate",
        str(head_ct_nifti),
        str(out),
        "--steps",
        "3",
        "--device",
        "cpu",
        "--save-mask",
        str(tmp_path / "mask.nii.gz"),
        "--qc",
        str(tmp_path / "qc.png"),
        "--trust-map",
        str(tmp_path / "trust.nii.gz"),
    ]
    assert main(args) == 0
    ct_img, mri_img = nib.load(str(head_ct_nifti)), nib.load(str(out))
    assert mri_img.shape == ct_img.shape
    np.testing.assert_array_equal(mri_img.affine, ct_img.affine)
    assert int(mri_img.header["sform_code"]) == int(ct_img.header["sform_code"])
    assert int(mri_img.header["qform_code"]) == int(ct_img.header["qform_code"])
    assert b"NOT FOR DIAGNOSIS" in mri_img.header["descrip"].tobytes()
    mri = np.asarray(mri_img.dataobj)
    mask = np.asarray(nib.load(str(tmp_path / "mask.nii.gz")).dataobj) > 0
    assert np.isfinite(mri).all()
    assert (mri[~mask] == 0).all() and mri[mask].max() > 0
    csf, white_like, grey_like = _t1_by_ct_tissue(
        np.asarray(ct_img.dataobj, dtype=np.float32), ct_img.affine, mri, mask
    )
    # T1 contrast inside the CT's own tissue classes: white matter (lower HU) brightest, CSF darkest
    assert white_like > grey_like + 0.05 and csf < 0.5 * grey_like
    sidecar = json.loads((tmp_path / "mri.json").read_text())
    assert sidecar["weights"].endswith("ct2mri-2mm.safetensors") and len(sidecar["weights_sha256"]) == 64
    assert sidecar["style_source"] == "model default"
    # the bundled model samples with co-prediction by default: one evaluation per slice and step
    assert sidecar["sampler"]["mode"] == "coprediction"
    assert sidecar["network_evaluations"] == sidecar["model_grid"]["model_shape"][0] * 3
    assert set(sidecar["seconds"]) >= {"read", "brain_mask", "sampling", "write"}
    assert (sidecar["device"], sidecar["batch_size"], sidecar["channels_last"], sidecar["precision"]) == (
        "cpu",
        8,
        True,
        "fp32",
    )
    assert (tmp_path / "qc.png").stat().st_size > 1000
    trust_img = nib.load(str(tmp_path / "trust.nii.gz"))
    np.testing.assert_array_equal(trust_img.affine, ct_img.affine)
    expected = np.asarray(trust_img.dataobj)
    assert (expected[~mask] == 0).all() and expected[mask].min() > 0
    assert sidecar["trust"]["mean_expected_error"] == pytest.approx(float(expected[mask].mean()), abs=1e-4)
    assert sidecar["trust"]["map"] == str(tmp_path / "trust.nii.gz")
    assert "trust" in [c["name"] for c in sidecar["checks"]]

    again = tmp_path / "again.nii.gz"
    assert main(args[:3] + [str(again)] + args[4:8]) == 0
    assert np.array_equal(np.asarray(nib.load(str(again)).dataobj), mri)


@pytest.mark.realdata
@pytest.mark.slow
def test_batch_isolates_failures_and_skips_existing(tmp_path, weights, head_ct_nifti, capsys):
    good = tmp_path / "good.nii.gz"
    shutil.copy(head_ct_nifti, good)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"garbage")
    outdir = tmp_path / "out"
    args = [
        "translate",
        str(good),
        str(bad),
        "-o",
        str(outdir),
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--steps",
        "2",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "1 translated" in err and "1 failed" in err
    assert _files(outdir) == ["ct2mri_status_1-of-1.jsonl", "good_synT1.json", "good_synT1.nii.gz"]
    status = {e["case"]: e for e in map(json.loads, (outdir / "ct2mri_status_1-of-1.jsonl").read_text().splitlines())}
    assert status["good"]["state"] == "done" and status["good"]["output"] == str(outdir / "good_synT1.nii.gz")
    assert status["broken"]["state"] == "failed" and "broken.nii.gz" in status["broken"]["error"]
    before = (outdir / "good_synT1.nii.gz").stat().st_mtime_ns
    assert main(["-q", "translate", str(good), "-o", str(outdir), "--weights", str(weights), "--skip-existing"]) == 0
    assert (outdir / "good_synT1.nii.gz").stat().st_mtime_ns == before
    status_before = (outdir / "ct2mri_status_1-of-1.jsonl").read_text()
    assert main(["-q", "translate", str(good), "-o", str(outdir), "--weights", str(weights)]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--skip-existing" in err and "1 of 1 cases have outputs already" in err
    # refused up front: the finished case is still recorded as done
    assert (outdir / "ct2mri_status_1-of-1.jsonl").read_text() == status_before
    assert (outdir / "good_synT1.nii.gz").stat().st_mtime_ns == before


def test_a_json_the_user_had_beside_the_named_output_is_not_replaced(tmp_path, weights, phantom_ct, capsys):
    result = tmp_path / "result.nii.gz"
    theirs = tmp_path / "result.json"
    theirs.write_text('{"their": "notes"}\n')
    args = ["translate", str(phantom_ct), str(result), "--weights", str(weights), "--device", "cpu", "--steps", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "result.json exists and is not the sidecar of" in " ".join(err.split()) and "Traceback" not in err
    assert theirs.read_text() == '{"their": "notes"}\n' and not result.exists()
    assert main(args + ["--force"]) == 0  # replaced only when asked
    assert json.loads(theirs.read_text())["synthetic"] is True
    assert main(args) == 0  # a rerun replaces the output named and its own sidecar


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_fail_cleanly(tmp_path, weights, phantom_ct, capsys):
    out = tmp_path / "o.nii.gz"
    base = ["translate", "--weights", str(weights), "--device", "cpu"]

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert main(base + [str(text), str(out)]) == 1
    _one_line_error(capsys, "notes.txt")

    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.int16) - 1000, np.eye(4)), str(flat))
    assert main(base + [str(flat), str(out)]) == 1
    _one_line_error(capsys, "flat.nii.gz", "2D")

    mri_like = tmp_path / "t1.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image((rng.random((24, 24, 24)) * 800).astype(np.float32), np.eye(4)), str(mri_like))
    assert main(base + [str(mri_like), str(out)]) == 1
    _one_line_error(capsys, "t1.nii.gz", "Hounsfield")

    assert main(["translate", str(mri_like), str(out), "--weights", str(tmp_path / "none.safetensors")]) == 1
    _one_line_error(capsys, "none.safetensors", "not found")

    wrong_key = tmp_path / "key.safetensors"
    save_file({"style_key": torch.zeros(2, 64)}, str(wrong_key))
    assert main(base + [str(mri_like), str(out), "--style", str(wrong_key)]) == 1
    _one_line_error(capsys, "key.safetensors", "3x128")

    (tmp_path / "plain_file").write_text("in the way")
    assert main(base + [str(phantom_ct), str(tmp_path / "plain_file" / "o.nii.gz")]) == 1
    _one_line_error(capsys, "plain_file", "a file of that name is in the way")

    assert main(base + [str(mri_like), str(out), "--sampler", "magic"]) == 1
    _one_line_error(capsys, "--sampler")

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flat.nii.gz",
        "key.safetensors",
        "notes.txt",
        "plain_file",
        "t1.nii.gz",
    ]


def test_sampler_settings_take_the_model_defaults_unless_given():
    from ct2mri_cli.settings import SamplingConfig

    defaults = SamplingConfig(steps=10, corrections=1, step_size=0.5, mode="ista", correction_norm="released")
    assert defaults.with_overrides() == defaults
    assert defaults.with_overrides(steps=3, step_size=0.0, mode="coprediction") == SamplingConfig(
        3, 1, 0.0, "coprediction", "released"
    )


def test_the_paper_sampler_is_one_flag_away_and_keeps_the_cap():
    from ct2mri_cli.diffusion.sampler import network_evaluations
    from ct2mri_cli.settings import SamplingConfig

    model = SamplingConfig(
        steps=3, corrections=0, step_size=0.0, mode="coprediction", correction_norm="released", correction_cap=0.03
    )
    paper = model.as_paper()
    assert paper == SamplingConfig(50, 1, 0.5, "ista", "paper", 0.03)
    assert network_evaluations(1, paper.steps, paper.corrections, paper.mode, paper.step_size) == 99
    assert paper.with_overrides(steps=25) == SamplingConfig(25, 1, 0.5, "ista", "paper", 0.03)


def test_translate_paper_records_the_papers_settings(tmp_path, weights, phantom_ct):
    import json

    out = tmp_path / "o.nii.gz"
    assert (
        main(
            [
                "-q",
                "translate",
                str(phantom_ct),
                str(out),
                "--weights",
                str(weights),
                "--device",
                "cpu",
                "--paper",
                "--steps",
                "3",
            ]
        )
        == 0
    )
    sampling = json.loads(out.with_name("o.json").read_text())["sampler"]
    assert {k: sampling[k] for k in ("mode", "steps", "corrections", "step_size", "correction_norm")} == {
        "mode": "ista",
        "steps": 3,
        "corrections": 1,
        "step_size": 0.5,
        "correction_norm": "paper",
    }


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory):
    """A synthetic head CT in HU (the conftest phantom) as NIfTI: translates in seconds."""
    from tests.conftest import make_head_phantom

    phantom = make_head_phantom(spacing=(3.0, 3.0, 3.0))
    path = tmp_path_factory.mktemp("phantom") / "head.nii.gz"
    nib.save(nib.Nifti1Image(phantom.hu.astype(np.int16), phantom.affine), str(path))
    return path


def test_an_output_never_overwrites_an_input_or_another_output(tmp_path, weights, phantom_ct, capsys):
    base = ["translate", "--weights", str(weights), "--device", "cpu"]
    victim = tmp_path / "v.nii.gz"
    shutil.copy(phantom_ct, victim)
    before = victim.read_bytes()
    assert main(base + [str(victim), str(victim)]) == 1
    _one_line_error(capsys, "would overwrite the input")
    assert victim.read_bytes() == before

    out = tmp_path / "out.nii.gz"
    assert main(base + [str(victim), str(out), "--save-mask", str(out)]) == 1
    _one_line_error(capsys, "named as both the synthetic T1", "brain mask")
    assert (
        main(
            base
            + [
                str(victim),
                str(out),
                "--mask",
                str(out.with_name("m.nii.gz")),
                "--save-mask",
                str(out.with_name("m.nii.gz")),
            ]
        )
        == 1
    )
    _one_line_error(capsys, "would overwrite the input")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii.gz"]


@pytest.mark.parametrize("factor", [10.0, 1000.0, 1e26])
def test_a_mis_scaled_ct_is_refused(tmp_path, weights, phantom_ct, capsys, factor):
    img = nib.load(str(phantom_ct))
    scaled = tmp_path / "scaled.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32) * factor, img.affine), str(scaled))
    assert (
        main(["translate", str(scaled), str(tmp_path / "o.nii.gz"), "--weights", str(weights), "--device", "cpu"]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("Hounsfield" in err or "mL" in err), err
    assert not (tmp_path / "o.nii.gz").exists()


def test_more_steps_than_the_bridge_has_are_refused(tmp_path, weights, phantom_ct, capsys):
    args = ["translate", str(phantom_ct), str(tmp_path / "o.nii.gz"), "--weights", str(weights), "--steps", "5000"]
    assert main(args) == 1
    _one_line_error(capsys, "--steps 5000", "1000 time steps")


def test_skip_existing_completes_an_interrupted_case_and_cleans_its_leftovers(tmp_path, weights, phantom_ct):
    cases = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"]
    for case in cases:
        shutil.copy(phantom_ct, case)
    out = tmp_path / "out"
    args = [
        "-q",
        "translate",
        *map(str, cases),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--qc",
        str(out / "qc"),
    ]
    assert main(args) == 0
    finished = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    # as a kill between the renames would leave it: a's image without its sidecar, and a temporary file
    (out / "a_synT1.json").unlink()
    stale = out / ".a_synT1.nii.gz.x1y2z3.nii.gz"
    stale.write_bytes(b"partial")
    assert main(args + ["--skip-existing"]) == 0
    assert (out / "a_synT1.json").is_file() and not stale.exists()
    assert (out / "b_synT1.nii.gz").stat().st_mtime_ns == finished["b_synT1.nii.gz"]  # b was finished: untouched
    assert sorted(p.name for p in out.iterdir()) == [
        "a_synT1.json",
        "a_synT1.nii.gz",
        "b_synT1.json",
        "b_synT1.nii.gz",
        "ct2mri_status_1-of-1.jsonl",
        "qc",
    ]
    lines = [json.loads(line) for line in (out / "ct2mri_status_1-of-1.jsonl").read_text().splitlines()]
    assert sorted((e["case"], e["state"]) for e in lines) == [("a", "done"), ("b", "done")]


def test_an_output_folder_that_cannot_be_written_is_named_before_any_work(tmp_path, weights, phantom_ct, capsys):
    """/proc takes no new files, even from root: the run stops before the model is loaded."""
    out = "/proc/ct2mri-test-output/syn.nii.gz"
    assert main(["translate", str(phantom_ct), out, "--weights", str(tmp_path / "no-such-weights.safetensors")]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "/proc/ct2mri-test-output: cannot write there" in lines[0], err


def test_a_file_name_for_several_inputs_and_a_folder_name_for_one_picture_are_refused(
    tmp_path, weights, phantom_ct, capsys
):
    base = ["translate", "--weights", str(weights), "--device", "cpu"]
    other = tmp_path / "other.nii.gz"
    shutil.copy(phantom_ct, other)
    assert main(base + [str(phantom_ct), str(other), "-o", str(tmp_path / "one.nii.gz")]) == 1
    _one_line_error(capsys, "one.nii.gz: names a file, but 2 inputs need a folder")
    assert main(base + [str(phantom_ct), str(tmp_path / "syn.nii.gz"), "--qc", str(tmp_path / "myqc")]) == 1
    _one_line_error(capsys, "the QC picture of one output is a .png file")
    assert main(base + [str(phantom_ct), str(tmp_path / "syn.nii.gz"), "--save-mask", str(tmp_path / "masks")]) == 1
    _one_line_error(capsys, "--save-mask", "for one output it names a .nii or .nii.gz file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.nii.gz"]


def test_impossible_sampler_options_fail_before_the_model_loads(tmp_path, phantom_ct, capsys):
    missing = tmp_path / "no-such-weights.safetensors"
    for option, value, words in (
        ("--steps", "1", "--steps must be at least 2"),
        ("--corrections", "-1", "--corrections must be >= 0"),
        ("--sampler", "euler", "--sampler must be one of"),
    ):
        assert (
            main(["translate", str(phantom_ct), str(tmp_path / "s.nii.gz"), "--weights", str(missing), option, value])
            == 1
        )
        _one_line_error(capsys, words)


def test_the_threads_used_are_chosen_and_recorded(tmp_path, weights, phantom_ct, capsys):
    import torch

    out = tmp_path / "syn.nii.gz"
    before = torch.get_num_threads()
    try:
        assert (
            main(
                [
                    "-q",
                    "translate",
                    str(phantom_ct),
                    str(out),
                    "--weights",
                    str(weights),
                    "--device",
                    "cpu",
                    "--steps",
                    "2",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
        assert json.loads(out.with_name("syn.json").read_text())["threads"] == {"count": 1, "source": "--threads"}
    finally:
        torch.set_num_threads(before)
    assert (
        main(
            [
                "translate",
                str(phantom_ct),
                str(out),
                "--weights",
                str(tmp_path / "none.safetensors"),
                "--threads",
                "0",
                "--force",
            ]
        )
        == 1
    )
    _one_line_error(capsys, "--threads must be at least 1")
