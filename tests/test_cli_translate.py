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


@pytest.mark.realdata
@pytest.mark.slow
def test_real_head_ct_end_to_end(tmp_path, head_ct_nifti):
    """The bundled model (few steps, to stay quick) on the real head CT."""
    out = tmp_path / "mri.nii.gz"
    args = ["-q", "translate", str(head_ct_nifti), str(out), "--steps", "3", "--device", "cpu",
            "--save-mask", str(tmp_path / "mask.nii.gz"), "--qc", str(tmp_path / "qc.png")]
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
    sidecar = json.loads((tmp_path / "mri.json").read_text())
    assert sidecar["weights"].endswith("ct2mri-demo-2mm.safetensors") and len(sidecar["weights_sha256"]) == 64
    assert sidecar["style_source"] == "model default"
    assert sidecar["network_evaluations"] == sidecar["model_grid"]["model_shape"][0] * (3 + 1 * 2)
    assert set(sidecar["seconds"]) >= {"read", "brain_mask", "sampling", "write"}
    assert (sidecar["device"], sidecar["batch_size"], sidecar["channels_last"], sidecar["precision"]) == ("cpu", 8, True, "fp32")
    assert (tmp_path / "qc.png").stat().st_size > 1000

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
    args = ["translate", str(good), str(bad), "-o", str(outdir), "--weights", str(weights), "--device", "cpu", "--steps", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "broken" in err and "1 translated" in err and "1 failed" in err
    assert _files(outdir) == ["good_synT1.json", "good_synT1.nii.gz"]
    before = (outdir / "good_synT1.nii.gz").stat().st_mtime_ns
    assert main(["-q", "translate", str(good), "-o", str(outdir), "--weights", str(weights), "--skip-existing"]) == 0
    assert (outdir / "good_synT1.nii.gz").stat().st_mtime_ns == before
    assert main(["-q", "translate", str(good), "-o", str(outdir), "--weights", str(weights)]) == 1
    assert "exists" in capsys.readouterr().err


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_fail_cleanly(tmp_path, weights, capsys):
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

    assert main(base + [str(mri_like), str(tmp_path / "missing" / "o.nii.gz")]) == 1
    _one_line_error(capsys, "does not exist")

    assert main(base + [str(mri_like), str(out), "--sampler", "magic"]) == 1
    _one_line_error(capsys, "--sampler")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.nii.gz", "key.safetensors", "notes.txt", "t1.nii.gz"]


def test_sampler_options_take_the_model_defaults_unless_given():
    from ct2mri_cli.settings import SamplingConfig
    from ct2mri_cli.inference.translator import SamplerOptions

    defaults = SamplingConfig(steps=10, corrections=1, step_size=0.5, mode="ista", correction_norm="released")
    assert SamplerOptions.from_config(defaults) == SamplerOptions(10, 1, 0.5, "ista", "released")
    assert SamplerOptions.from_config(defaults, steps=3, step_size=0.0, mode="coprediction") == SamplerOptions(
        3, 1, 0.0, "coprediction", "released")
