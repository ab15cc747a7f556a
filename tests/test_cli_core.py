"""The core subcommands: ``histogram`` and ``info``, plus the global options."""

import json

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli import __version__
from ct2mri_cli.cli.app import main
from ct2mri_cli.style.key import load_style_key
from ct2mri_cli.weights import ModelBundle, save_weights
from tests.helpers import tiny_network


def _mri(path, seed=0, scale=1000.0):
    rng = np.random.default_rng(seed)
    data = np.zeros((20, 20, 20), dtype=np.float32)
    data[4:16, 4:16, 4:16] = rng.random((12, 12, 12)) * scale + 50
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return data


def _key_by_hand(data: np.ndarray) -> np.ndarray:
    """The (3, 128) style key written out: robust min-max over the non-zero voxels, then the
    128-bin histogram of (0.001, 1] (x10), its cumulative sum and its differential (x10 again)."""
    brain = data > 0
    lo, hi = np.percentile(data[brain].astype(np.float64), [0.5, 99.5])
    unit = np.clip((data.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    values = unit[brain].astype(np.float64)
    values = values[(values > 0.001) & (values <= 1.0)]
    width = (1.0 - 0.001) / 128
    bins = np.minimum(np.floor((values - 0.001) / width).astype(int), 127)
    counts = np.bincount(bins, minlength=128)
    h = 10.0 * counts / len(values)
    return np.stack([h, np.cumsum(h), 10.0 * np.concatenate([[h[0]], np.diff(h)])])


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ct2mri {__version__}"


def test_histogram_of_one_volume_matches_the_library(tmp_path):
    data = _mri(tmp_path / "a.nii.gz")
    out = tmp_path / "key.safetensors"
    assert main(["-q", "histogram", str(tmp_path / "a.nii.gz"), "-o", str(out), "--png", str(tmp_path / "k.png")]) == 0
    key, meta = load_style_key(out)
    expected = _key_by_hand(data)
    assert expected[1, -1] == pytest.approx(10.0)
    np.testing.assert_allclose(key.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert meta["count"] == "1" and (tmp_path / "k.png").stat().st_size > 0


def test_histogram_of_several_is_the_average(tmp_path):
    a, b = _mri(tmp_path / "a.nii.gz", 0), _mri(tmp_path / "b.nii.gz", 1, scale=300.0)
    out = tmp_path / "avg.safetensors"
    assert main(["-q", "histogram", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "-o", str(out)]) == 0
    key, _ = load_style_key(out)
    expected = (_key_by_hand(a) + _key_by_hand(b)) / 2
    assert not np.allclose(_key_by_hand(a), _key_by_hand(b), atol=1e-3)
    np.testing.assert_allclose(key.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_histogram_replaces_the_named_output_but_never_an_input(tmp_path, capsys):
    """As in translate: the output file the user named is replaced; an input never is."""
    mri = tmp_path / "a.nii.gz"
    _mri(mri)
    out = tmp_path / "key.safetensors"
    out.write_bytes(b"old")
    assert main(["-q", "histogram", str(mri), "-o", str(out)]) == 0
    assert out.read_bytes() != b"old"
    before = mri.read_bytes()
    assert main(["histogram", str(mri), "-o", str(mri)]) == 1
    assert "would overwrite the input" in capsys.readouterr().err and mri.read_bytes() == before
    assert main(["histogram", str(mri), "-o", str(out), "--png", str(out)]) == 1
    assert "would overwrite the input" in capsys.readouterr().err


def test_histogram_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("hello")
    out = tmp_path / "key.safetensors"
    assert main(["histogram", str(bad), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "notes.nii.gz" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["notes.nii.gz"]


def test_info_json(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    save_weights(path, ModelBundle(network=tiny_network(), provenance={"seed": 3}))
    assert main(["info", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "ct2mri-weights v1"
    assert summary["network"]["base_channels"] == 16
    assert summary["parameters"] == sum(p.numel() for p in tiny_network().parameters())
    assert summary["provenance"]["seed"] == 3


def test_info_of_a_style_key(tmp_path, capsys):
    _mri(tmp_path / "a.nii.gz")
    key = tmp_path / "k.safetensors"
    assert main(["-q", "histogram", str(tmp_path / "a.nii.gz"), "-o", str(key)]) == 0
    assert main(["info", str(key), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "style key" and summary["histogram_mass"] == pytest.approx(10.0)


def test_info_of_a_foreign_file(tmp_path, capsys):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x00" * 10)
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert "x.safetensors" in err and "Traceback" not in err


def test_usage_errors_exit_2_without_traceback(capsys):
    assert main(["frobnicate"]) == 2
    assert main(["histogram"]) == 2
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_outputs_get_the_usual_file_mode(tmp_path):
    import os
    import stat

    _mri(tmp_path / "a.nii.gz")
    out = tmp_path / "key.safetensors"
    assert main(["-q", "histogram", str(tmp_path / "a.nii.gz"), "-o", str(out)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
