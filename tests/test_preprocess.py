"""`ct2mri preprocess`: one pair, batches, the manifest, bad inputs, and the real head CT."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from ct2mri_cli.cli.app import main
from ct2mri_cli.diffusion.bridge import BridgeConfig
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.cases import case_name
from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.preprocessing.geometry import GridRecord, apply_model_grid, from_model_grid
from ct2mri_cli.preprocessing.pairs import load_case, pairs_from_csv, read_manifest
from ct2mri_cli.preprocessing.registration import transform_from_dict
from ct2mri_cli.settings import SamplingConfig
from ct2mri_cli.style.key import load_style_key, style_key
from ct2mri_cli.weights import ModelBundle
from tests.conftest import INVESALIUS_CT, make_head_phantom, t1_from_hu
from tests.helpers import mean_displacement_mm, resample_to_reference, tiny_network

FAST = ["--spacing", "3", "--size", "56", "48", "--frame", "native"]  # the phantoms are not heads: no pose
FAST_CONFIG = PreprocessConfig(spacing_mm=3.0, in_plane=(56, 48), frame="native")


def save(path: Path, data: np.ndarray, affine: np.ndarray, dtype=np.float32) -> Path:
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


@pytest.fixture(scope="module")
def phantom_pair(tmp_path_factory):
    """A phantom CT stored LPS as int16 HU and a T1-like MRI of it on a 2.5 mm RAS grid."""
    folder = tmp_path_factory.mktemp("pair")
    phantom = make_head_phantom(spacing=(3.0, 3.0, 3.0))
    lps = phantom.hu[::-1, ::-1, :]
    affine = phantom.affine.copy()
    affine[:3, 0] *= -1
    affine[:3, 1] *= -1
    affine[:3, 3] = (
        phantom.affine[:3, :3] @ [phantom.hu.shape[0] - 1, phantom.hu.shape[1] - 1, 0] + phantom.affine[:3, 3]
    )
    ct_path = save(folder / "case1.nii.gz", np.rint(lps), affine, np.int16)
    mri_affine = np.diag([2.5, 2.5, 2.5, 1.0])
    mri_affine[:3, 3] = phantom.affine[:3, 3] + 4.0
    grid = Volume(np.zeros((66, 75, 69), np.float32), mri_affine)
    hu_on_mri = resample_to_reference(Volume(phantom.hu, phantom.affine), grid, fill=-1000.0)
    mri_path = save(folder / "case1_t1.nii.gz", t1_from_hu(hu_on_mri), mri_affine)
    return ct_path, mri_path, phantom.intracranial[::-1, ::-1, :], affine


def one_line_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_single_pair_writes_a_model_ready_case(phantom_pair, tmp_path, capsys):
    ct_path, mri_path, truth, ct_affine = phantom_pair
    out = tmp_path / "out"
    assert (
        main(["preprocess", "--ct", str(ct_path), "--mri", str(mri_path), "-o", str(out), "--no-register", *FAST]) == 0
    )
    assert "preprocessed 1 case(s), 0 failed" in capsys.readouterr().err

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "ct2mri-preprocessed" and manifest["version"] == 1
    assert manifest["preprocess"] == json.loads(json.dumps(FAST_CONFIG.to_dict()))
    (entry,) = manifest["cases"]
    assert entry["case"] == "case1" and entry["registration_metric"] is None and entry["registration"] == "none"
    assert entry["head_pose"] is None  # --frame native
    for key, name in (
        ("ct", "ct.nii.gz"),
        ("mri", "mri.nii.gz"),
        ("mask", "mask.nii.gz"),
        ("style_key", "style_key.safetensors"),
        ("qc", "qc.png"),
    ):
        assert entry[key] == f"case1/{name}" and (out / entry[key]).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["case1", "manifest.json"]
    assert entry["spacing_mm"] == 3.0

    record = GridRecord.from_dict(entry["grid"])
    ct01, mri01, mask = load_case(out, entry)
    assert ct01.shape == mri01.shape == mask.shape == tuple(entry["shape"]) == record.model_shape
    assert ct01.shape[1:] == (56, 48)
    for array in (ct01, mri01):
        assert array.dtype == np.float32 and array.min() >= 0.0 and array.max() <= 1.0
        assert np.all(array[~mask] == 0.0)
    # brain HU about 28-38 in a 0-80 window
    assert 0.3 < np.median(ct01[mask]) < 0.5
    ct_img = nib.load(str(out / entry["ct"]))
    np.testing.assert_allclose(ct_img.affine, record.model_affine)
    assert ct_img.get_data_dtype() == np.float32
    assert nib.load(str(out / entry["mask"])).get_data_dtype() == np.uint8
    assert b"not" not in ct_img.header["descrip"].tobytes() and b"CT 0..80 HU" in ct_img.header["descrip"].tobytes()

    key, metadata = load_style_key(out / entry["style_key"])
    np.testing.assert_allclose(key.numpy(), style_key(mri01, mask).numpy(), atol=1e-6)
    assert metadata["case"] == "case1"
    qc = sitk.GetArrayFromImage(sitk.ReadImage(str(out / entry["qc"])))
    assert qc.ndim == 3 and qc.shape[2] == 3 and qc.shape[0] >= 56

    # the model grid is the CT's (as in translate), in RAS voxel order (the CT is stored LPS); back
    # on it, the mask is the phantom's intracranial space
    ras = nib.as_closest_canonical(nib.load(str(ct_path)))
    np.testing.assert_allclose(record.native_affine, ras.affine)
    native_mask = from_model_grid(mask.astype(np.float32), record, order="nearest") > 0.5
    truth_ras = truth[::-1, ::-1, :]
    dice = 2 * (native_mask & truth_ras).sum() / (native_mask.sum() + truth_ras.sum())
    assert dice > 0.9
    assert 900 < entry["brain_ml"] < 1300


def test_existing_case_needs_force_or_skip(phantom_pair, tmp_path, capsys):
    ct_path, mri_path, _, _ = phantom_pair
    out = tmp_path / "out"
    args = ["preprocess", "--ct", str(ct_path), "--mri", str(mri_path), "-o", str(out), "--no-register", *FAST]
    assert main(args) == 0
    before = (out / "case1" / "ct.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 1
    assert "exists (use --force" in one_line_error(capsys)
    assert main([*args, "--skip-existing"]) == 0
    assert "skipped" in capsys.readouterr().err
    assert (out / "case1" / "ct.nii.gz").stat().st_mtime_ns == before
    assert main([*args, "--force"]) == 0
    assert (out / "case1" / "ct.nii.gz").stat().st_mtime_ns != before
    assert len(read_manifest(out)["cases"]) == 1
    # other settings into the same folder are refused
    capsys.readouterr()
    assert main([*args[: -len(FAST)], "--spacing", "3", "--size", "64", "48", "--case", "other"]) == 1
    assert "other preprocessing settings" in one_line_error(capsys)


def test_batch_csv_isolates_a_failing_case(phantom_pair, tmp_path, capsys):
    ct_path, mri_path, _, ct_affine = phantom_pair
    bad = save(tmp_path / "flat.nii.gz", np.full((20, 20, 20), 40.0), ct_affine)
    table = tmp_path / "pairs.csv"
    table.write_text(f"case,ct,mri\ngood,{ct_path},{mri_path}\nbroken,flat.nii.gz,{mri_path}\n")
    pairs = pairs_from_csv(table)
    assert [p.case for p in pairs] == ["good", "broken"] and pairs[1].ct == bad
    out = tmp_path / "out"
    assert main(["--quiet", "preprocess", "--csv", str(table), "-o", str(out), "--no-register", *FAST]) == 1
    err = capsys.readouterr().err
    assert f"failed broken: {bad}: the volume is constant" in err
    assert "preprocessed 1 case(s), 1 failed, 0 skipped" in err
    assert [c["case"] for c in read_manifest(out)["cases"]] == ["good"]
    assert sorted(p.name for p in out.iterdir()) == ["good", "manifest.json"]


def test_batch_folders_are_matched_by_case_name(phantom_pair, tmp_path, capsys):
    ct_path, mri_path, _, _ = phantom_pair
    ct_dir, mri_dir = tmp_path / "ct", tmp_path / "mri"
    ct_dir.mkdir()
    mri_dir.mkdir()
    (ct_dir / "sub01.nii.gz").symlink_to(ct_path)
    (ct_dir / "sub02.nii.gz").symlink_to(ct_path)
    (mri_dir / "sub01.nii.gz").symlink_to(mri_path)
    (mri_dir / "sub03.nii").write_bytes(b"")
    out = tmp_path / "out"
    code = main(
        ["preprocess", "--ct-dir", str(ct_dir), "--mri-dir", str(mri_dir), "-o", str(out), "--no-register", *FAST]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "failed sub02: " in err and "no MRI named sub02" in err
    assert "failed sub03: " in err and "no CT named sub03" in err
    assert [c["case"] for c in read_manifest(out)["cases"]] == ["sub01"]


def test_case_names():
    assert case_name("a/b/sub-01.nii.gz") == "sub-01"
    assert case_name("x.NII") == "x"
    assert case_name("Cranium.inv3") == "Cranium"
    assert case_name("/data/dicom/patient7") == "patient7"
    assert case_name("scan.v2.mha") == "scan.v2"


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Every unusable input of the issue, as files, with the words the message must contain."""
    eye = np.eye(4)
    shear = np.eye(4)
    shear[0, 1] = 0.5
    sheared = nib.Nifti1Image(np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32), None)
    sheared.header.set_sform(shear, code=1)
    nib.save(sheared, str(folder / "sheared.nii.gz"))
    nan = np.random.default_rng(1).normal(size=(8, 8, 8)).astype(np.float32)
    nan[2, 2, 2] = np.nan
    inf = nan.copy()
    inf[2, 2, 2] = np.inf
    (folder / "notes.nii.gz").write_text("hello")
    (folder / "notes.txt").write_text("hello")
    phantom = make_head_phantom(spacing=(4.0, 4.0, 4.0))
    t1 = np.clip(phantom.hu + 1000.0, 0, None) / 8.0
    return {
        "missing": (folder / "absent.nii.gz", "no such file"),
        "not-nifti": (folder / "notes.nii.gz", "not a readable NIfTI"),
        "not-image": (folder / "notes.txt", "not a readable image"),
        "2d": (save(folder / "flat2d.nii.gz", np.ones((8, 8)) * np.arange(8), eye), "2D image"),
        "4d": (
            save(folder / "four.nii.gz", np.random.default_rng(2).normal(size=(8, 8, 8, 2)), eye),
            "holds 2 volumes",
        ),
        "empty": (save(folder / "empty.nii.gz", np.zeros((0, 8, 8)), eye), "empty"),
        "constant": (save(folder / "const.nii.gz", np.full((8, 8, 8), 3.0), eye), "constant"),
        "nan": (save(folder / "nan.nii.gz", nan, eye), "NaN or Inf"),
        "inf": (save(folder / "inf.nii.gz", inf, eye), "NaN or Inf"),
        "sheared": (folder / "sheared.nii.gz", "not orthonormal"),
        "mri-as-ct": (save(folder / "t1.nii.gz", t1, phantom.affine), "not Hounsfield units"),
    }


BAD_KINDS = ["missing", "not-nifti", "not-image", "2d", "4d", "empty", "constant", "nan", "inf", "sheared", "mri-as-ct"]


@pytest.mark.parametrize(
    "kind,role",
    [(k, r) for k in BAD_KINDS for r in ("ct", "mri") if (k, r) != ("mri-as-ct", "mri")],  # a T1 is a valid MRI
)
def test_bad_inputs_fail_with_one_line_naming_the_file(phantom_pair, tmp_path, capsys, kind, role):
    ct_path, mri_path, _, _ = phantom_pair
    bad, words = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "out"
    ct, mri = (bad, mri_path) if role == "ct" else (ct_path, bad)
    code = main(["preprocess", "--ct", str(ct), "--mri", str(mri), "-o", str(out), "--no-register", *FAST])
    assert code != 0
    line = one_line_error(capsys)
    assert str(bad) in line and words in line
    assert not out.exists()


def test_a_ct_given_as_the_mri_is_refused(phantom_pair, tmp_path, capsys):
    ct_path = phantom_pair[0]
    out = tmp_path / "o"
    assert main(["preprocess", "--ct", str(ct_path), "--mri", str(ct_path), "-o", str(out)]) == 1
    line = one_line_error(capsys)
    assert str(ct_path) in line and "an MRI is needed here, not a CT" in line
    assert not any(out.rglob("*.nii.gz")) if out.exists() else True


def test_usage_errors(tmp_path, capsys):
    assert main(["preprocess", "-o", str(tmp_path / "o")]) == 1
    assert "give exactly one input" in one_line_error(capsys)
    assert main(["preprocess", "--ct", "a", "--csv", "b", "-o", str(tmp_path / "o")]) == 1
    assert "give exactly one input" in one_line_error(capsys)
    assert (
        main(["preprocess", "--ct", "a.nii", "--mri", "b.nii", "-o", str(tmp_path / "o"), "--ct-window", "80", "0"])
        == 1
    )
    assert "--ct-window" in one_line_error(capsys)
    table = tmp_path / "t.csv"
    table.write_text("name,ct,mri\nx,a,b\n")
    assert main(["preprocess", "--csv", str(table), "-o", str(tmp_path / "o")]) == 1
    assert "missing: case" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.realdata
def test_real_head_ct_through_preprocess(head_ct, head_ct_mask, tmp_path, capsys):
    """The real CT against a T1-like picture of itself moved by 6 degrees and 5.4 mm."""
    brain_ct = np.argwhere(head_ct_mask) @ head_ct.affine[:3, :3].T + head_ct.affine[:3, 3]
    motion = sitk.VersorRigid3DTransform()
    motion.SetCenter([float(v) for v in brain_ct.mean(axis=0) * [-1, -1, 1]])
    motion.SetRotation([0.3, -1.0, 0.6], float(np.deg2rad(6.0)))
    motion.SetTranslation([4.0, -3.0, 2.0])
    mri_affine = np.diag([1.5, 1.5, 1.5, 1.0])
    mri_affine[:3, 3] = [-120.0, -120.0, -95.0]
    grid = Volume(np.zeros((160, 160, 120), np.float32), mri_affine)  # covers the whole brain
    # the MRI shows at p what the CT shows at motion(p): registration must find `motion`
    mri_path = save(
        tmp_path / "pseudo_t1.nii.gz",
        t1_from_hu(resample_to_reference(head_ct, grid, motion, fill=-1000.0)),
        mri_affine,
    )
    out = tmp_path / "out"
    assert main(["preprocess", "--ct", str(INVESALIUS_CT), "--mri", str(mri_path), "-o", str(out)]) == 0
    capsys.readouterr()

    (entry,) = read_manifest(out)["cases"]
    assert entry["case"] == "Cranium" and entry["registration"] == "rigid"
    assert 1000.0 <= entry["brain_ml"] <= 1700.0
    assert np.isfinite(entry["registration_metric"]) and entry["registration_metric"] < -0.5
    found = transform_from_dict(entry["registration_transform"])
    points_mri = np.array(
        [motion.GetInverse().TransformPoint([float(v) for v in p * [-1, -1, 1]]) for p in brain_ct[::50]]
    ) * [-1, -1, 1]
    error = mean_displacement_mm(found, motion, points_mri)
    assert error < 1.0, f"registration error {error:.2f} mm"

    ct01, mri01, mask = load_case(out, entry)
    assert ct01.shape[1:] == PreprocessConfig().in_plane and ct01.shape[0] > 100
    assert abs(mask.sum() / 1000.0 - entry["brain_ml"]) / entry["brain_ml"] < 0.03  # 1 mm voxels
    assert 0.2 < np.median(ct01[mask]) < 0.4  # brain ~24 HU in 0-80
    assert 0.0 < np.median(mri01[mask]) < 1.0
    assert (out / entry["qc"]).is_file()

    # the MRI was pulled onto the CT's model grid through the inverse of the registration: it
    # matches the T1-like picture computed directly from the CT on that grid (0.83; through the
    # forward transform 0.15, through none 0.26; interpolating before and after the nonlinear
    # T1 mapping keeps it below 1)
    from ct2mri_cli.io.images import canonical_order

    record = GridRecord.from_dict(entry["grid"])  # on the CT's grid in RAS voxel order
    direct = apply_model_grid(t1_from_hu(canonical_order(head_ct)[0].data), record)
    correlation = np.corrcoef(direct[mask], mri01[mask])[0, 1]
    assert correlation > 0.7, correlation

    # a model trained on these pairs (it records the manifest's settings) cuts, in translate, the
    # same model slices from the same CT
    recorded = PreprocessConfig.from_dict(read_manifest(out)["preprocess"])
    assert recorded.frame == "canonical"
    bundle = ModelBundle(
        network=tiny_network(), bridge=BridgeConfig(), preprocess=recorded, default_style_key=torch.rand(3, 128)
    )
    translator = Translator(bundle, torch.device("cpu"), SamplingConfig(steps=2, corrections=0, mode="coprediction"))
    translation = translator.translate(read_volume(INVESALIUS_CT), bundle.default_style_key)
    assert translation.record.to_dict() == entry["grid"]
    assert entry["head_pose"] == translation.pose.to_dict()
    np.testing.assert_array_equal(translation.mask_model, mask)
    np.testing.assert_array_equal(translation.ct_model01, ct01)
