"""``ct2mri synthesize``: files, manifest, overwrite protection, determinism, bad input."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.cli.app import main
from ct2mri_cli.data import projection, synthesis, synthetic_set
from ct2mri_cli.data.sources import source_missing
from ct2mri_cli.data.synthesis import anatomy

FAST = ["--spacing", "4"]


def _need_sources(*names):
    """Skip only when a source's template files are absent; any other failure is a failure."""
    for name in names:
        reason = source_missing(name)
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two pairs (one per source) written once for the tests that only read them."""
    _need_sources("mni", "colin27")
    out = tmp_path_factory.mktemp("syn") / "set"
    assert main(["-q", "synthesize", "-o", str(out), "-n", "2", "--seed", "3", *FAST]) == 0
    return out


def test_the_projection_ct_model_images_the_same_subjects(generated, tmp_path):
    """Same seed, other CT model: the same T1s and masks, other CTs, each scan's scanner recorded."""
    out = tmp_path / "projection"
    assert main(["-q", "synthesize", "-o", str(out), "-n", "2", "--seed", "3", "--ct-model", "projection", *FAST]) == 0
    manifest = json.loads((out / "synthesis.json").read_text())
    assert manifest["settings"]["ct_model"] == "projection"
    for entry in manifest["cases"]:
        rng = np.random.default_rng([entry["seed"], synthesis.SCANNER_STREAM])
        assert entry["scanner"] == projection.sample_scanner(rng, "wide").to_dict()
        for key in ("mri", "mask"):
            ours = np.asanyarray(nib.load(str(out / entry[key])).dataobj)
            assert np.array_equal(ours, np.asanyarray(nib.load(str(generated / entry[key])).dataobj))
        ct = np.asanyarray(nib.load(str(out / entry["ct"])).dataobj)
        assert not np.array_equal(ct, np.asanyarray(nib.load(str(generated / entry["ct"])).dataobj))
        mask = np.asanyarray(nib.load(str(out / entry["mask"])).dataobj).astype(bool)
        assert 0 < np.median(ct[mask]) < 60 and ct.max() > 1000


def test_a_fine_warp_moves_the_same_subjects_sulci(generated, tmp_path):
    """Same seed with --fine-warp: the same subject drawn (its other parameters unchanged), its
    anatomy moved a little (not a new brain), the fine warp recorded."""
    out = tmp_path / "fine"
    assert main(["-q", "synthesize", "-o", str(out), "-n", "2", "--seed", "3", "--fine-warp", "1.2", *FAST]) == 0
    manifest = json.loads((out / "synthesis.json").read_text())
    plain = json.loads((generated / "synthesis.json").read_text())
    assert manifest["settings"]["fine_warp_mm"] == 1.2 and "fine_warp_mm" not in plain["settings"]
    for entry, before in zip(manifest["cases"], plain["cases"]):
        params = dict(entry["params"])
        assert 0.6 <= params.pop("fine_warp_rms_mm") <= 1.2
        assert 12.0 <= params.pop("fine_warp_fwhm_mm") <= 16.0
        before = dict(before["params"])
        assert (before.pop("fine_warp_rms_mm"), before.pop("fine_warp_fwhm_mm")) == (0.0, 0.0)
        assert params == before
        masks = [np.asanyarray(nib.load(str(d / entry["mask"])).dataobj).astype(bool) for d in (out, generated)]
        overlap = 2 * (masks[0] & masks[1]).sum() / (masks[0].sum() + masks[1].sum())
        assert 0.93 < overlap < 0.999


@pytest.mark.realdata
def test_writes_pairs_csv_manifest_and_licence(generated):
    with open(generated / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["case_0000", "case_0001"]
    assert [r["source"] for r in rows] == ["mni", "colin27"]
    assert list(rows[0]) == ["case", "ct", "mri", "mask", "source", "seed"]
    assert [int(r["seed"]) for r in rows] == [synthesis.case_seed(3, 0), synthesis.case_seed(3, 1)]

    manifest = json.loads((generated / "synthesis.json").read_text())
    assert manifest["format"] == "ct2mri-synthetic-pairs" and manifest["settings"]["seed"] == 3
    assert manifest["settings"]["variety"] == "wide"  # the default
    assert manifest["settings"]["ct_model"] == "mixing"  # the default
    assert manifest["settings"]["licence"] == "MNI_LICENSE.txt"
    assert "McConnell Brain Imaging Centre" in (generated / "MNI_LICENSE.txt").read_text()
    for row, entry in zip(rows, manifest["cases"]):
        assert entry["case"] == row["case"] and entry["seed"] == int(row["seed"])
        assert entry["params"]["source"] == row["source"] and set(entry["params"]["hu"]) == set(synthesis.CLASSES)
        # the recorded parameters are the ones the seed draws
        drawn = synthesis.sample_subject(np.random.default_rng(entry["seed"]), row["source"], variety="wide").to_dict()
        assert entry["params"] == drawn

        imgs = {k: nib.load(str(generated / row[k])) for k in ("ct", "mri", "mask")}
        assert imgs["ct"].get_data_dtype() == np.int16 and imgs["mri"].get_data_dtype() == np.int16
        assert imgs["mask"].get_data_dtype() == np.uint8
        for img in imgs.values():
            assert img.shape == tuple(entry["shape"])
            np.testing.assert_allclose(img.affine, imgs["ct"].affine)
            np.testing.assert_allclose(img.header.get_zooms(), [4.0, 4.0, 4.0])
        assert b"not for diagnosis" in imgs["ct"].header["descrip"].tobytes()
        ct = np.asanyarray(imgs["ct"].dataobj)
        mask = np.asanyarray(imgs["mask"].dataobj).astype(bool)
        assert ct.min() >= -1024 and ct.max() > 1000 and 0 < np.median(ct[mask]) < 60
        assert entry["intracranial_ml"] == pytest.approx(mask.sum() * 64 / 1000.0, rel=1e-6)


@pytest.mark.realdata
def test_pairs_csv_feeds_preprocess(generated):
    from ct2mri_cli.preprocessing.pairs import pairs_from_csv

    pairs = pairs_from_csv(generated / "pairs.csv")
    assert [p.case for p in pairs] == ["case_0000", "case_0001"]
    assert all(p.ct.is_file() and p.mri.is_file() and p.mri.name == "t1.nii.gz" for p in pairs)


@pytest.mark.realdata
def test_refuses_to_overwrite_then_force_reproduces_the_same_bytes(generated, capsys):
    before = {p: p.read_bytes() for p in sorted(generated.rglob("*")) if p.is_file()}
    assert main(["synthesize", "-o", str(generated), "-n", "2", "--seed", "3", *FAST]) == 1
    err = capsys.readouterr().err
    assert "exists (use --force to overwrite)" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in before} == before
    assert main(["-q", "synthesize", "-o", str(generated), "-n", "2", "--seed", "3", *FAST, "--force"]) == 0
    after = {p: p.read_bytes() for p in sorted(generated.rglob("*")) if p.is_file()}
    assert after == before  # same seed, identical files


@pytest.mark.realdata
def test_another_seed_gives_other_anatomy(generated, tmp_path):
    _need_sources("mni")
    out = tmp_path / "other"
    masks = []
    for seed in (3, 4):  # calibrated subjects: the same field of view, so the masks compare voxel by voxel
        folder = out / str(seed)
        args = [
            "-q",
            "synthesize",
            "-o",
            str(folder),
            "-n",
            "1",
            "--seed",
            str(seed),
            "--source",
            "mni",
            "--variety",
            "calibrated",
        ]
        assert main([*args, *FAST]) == 0
        masks.append(np.asanyarray(nib.load(str(folder / "case_0000" / "brain_mask.nii.gz")).dataobj).astype(bool))
    a, b = masks
    assert a.shape == b.shape and 2 * (a & b).sum() / (a.sum() + b.sum()) < 0.98


@pytest.mark.realdata
def test_progress_lines_and_quiet(tmp_path, capsys):
    _need_sources("colin27")
    assert main(["synthesize", "-o", str(tmp_path / "a"), "-n", "1", "--source", "colin27", *FAST]) == 0
    err = capsys.readouterr().err
    assert "done case_0000" in err and "wrote 1 pair(s)" in err
    assert main(["synthesize", "-o", str(tmp_path / "b"), "-n", "1", "--source", "colin27", *FAST, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "b" / "MNI_LICENSE.txt").exists()  # no MNI case, no MNI notice


@pytest.mark.realdata
@pytest.mark.slow
def test_model_space_is_training_ready(tmp_path):
    from ct2mri_cli.preprocessing.pairs import load_case, read_manifest

    _need_sources("colin27")
    out = tmp_path / "set"
    assert (
        main(["-q", "synthesize", "-o", str(out), "-n", "1", "--source", "colin27", "--spacing", "2", "--model-space"])
        == 0
    )
    manifest = read_manifest(out / "model")
    assert [c["case"] for c in manifest["cases"]] == ["case_0000"]
    assert manifest["cases"][0]["registration"] == "none"
    ct01, mri01, mask = load_case(out / "model", manifest["cases"][0])
    assert ct01.shape == mri01.shape == mask.shape and mask.any()
    assert 0.0 <= ct01.min() and ct01.max() <= 1.0 and mri01[mask].std() > 0.05
    assert (
        main(["-q", "synthesize", "-o", str(tmp_path / "x"), "-n", "1", "--source", "colin27", "--spacing", "2"]) == 0
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["-n", "0"], "need at least one pair"),
        (["-n", "1", "--source", "brainz"], "--source 'brainz': choose from mni, colin27, s1, fsl152"),
        (["-n", "1", "--source", "mni", "--exclude", "mni"], "leaves no source brain"),
        (["-n", "1", "--variety", "odd"], "--variety 'odd': choose from calibrated, wide"),
        (["-n", "1", "--ct-model", "xray"], "--ct-model 'xray': choose from mixing, projection"),
        (["-n", "1", "--spacing", "0"], "--spacing 0: use a voxel size between 0.25 and 8 mm"),
        (["-n", "1", "--fine-warp", "2"], "--fine-warp 2: use an RMS between 0 and 1.2 mm"),
        (["-n", "1", "--fine-warp", "-1"], "--fine-warp -1: use an RMS between 0 and 1.2 mm"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    assert main(["synthesize", "-o", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_parent_folders_are_created(tmp_path):
    assert main(["-q", "synthesize", "-o", str(tmp_path / "no" / "such"), "-n", "1", *FAST]) == 0
    assert (tmp_path / "no" / "such" / "pairs.csv").is_file()


def test_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["synthesize", "-o", str(tmp_path / "f"), "-n", "1"]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err


def test_missing_template_writes_nothing(tmp_path, monkeypatch, capsys):
    # bypass the per-process caches so the lookup really happens; each is patched where it is
    # looked up: prepare_anatomy by the command (via the package), _head_parts by the anatomy module
    monkeypatch.setattr(synthesis, "prepare_anatomy", synthesis.prepare_anatomy.__wrapped__)
    monkeypatch.setattr(anatomy, "_head_parts", anatomy._head_parts.__wrapped__)
    monkeypatch.setenv("CT2MRI_COLIN27_DIR", str(tmp_path / "empty"))
    out = tmp_path / "o"
    assert main(["synthesize", "-o", str(out), "-n", "1", "--source", "colin27"]) == 1
    assert "mricron-data" in capsys.readouterr().err
    assert not out.exists()


def test_sources_alternate_for_both():
    assert synthetic_set.sources_for("both", 5) == ["mni", "colin27", "mni", "colin27", "mni"]
    assert synthetic_set.sources_for("mni", 2) == ["mni", "mni"]


def test_source_lists_groups_and_exclusions():
    assert synthetic_set.sources_for("mni,s1,fsl152", 4) == ["mni", "s1", "fsl152", "mni"]
    everything = synthetic_set.parse_sources("all")
    assert everything == ["mni", "colin27", "s1", "fsl152", "sri24", "pydeface", "icbm2009c"]
    assert synthetic_set.parse_sources("all", exclude="colin27,s1") == [
        "mni",
        "fsl152",
        "sri24",
        "pydeface",
        "icbm2009c",
    ]
    assert synthetic_set.parse_sources("both,mni") == ["mni", "colin27"]  # each source once


def test_sources_lists_every_source_and_fetch_failures_exit_1(tmp_path, monkeypatch, capsys):
    import subprocess

    from ct2mri_cli.data import sources as registry

    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["sources"]) == 0
    listing = capsys.readouterr().out
    for name in registry.SOURCES:
        assert name in listing
    assert "BSD-2-Clause" in listing and "one person, whole head" in listing
    monkeypatch.setattr(
        registry.subprocess,
        "run",
        lambda command, **kw: subprocess.CompletedProcess(command, 1, "", "ERROR: offline\n"),
    )
    assert main(["-q", "sources", "--fetch", "pydeface"]) == 1
    assert "could not download pydeface==2.1.0: ERROR: offline" in capsys.readouterr().err
    assert main(["sources", "--fetch", "nope"]) == 1
    assert "--source 'nope'" in capsys.readouterr().err
