"""DICOM output: the synthetic series in the CT's study, frame of reference and slice geometry."""

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.cli.app import main
from ct2mri_cli.io.dicom import read_dicom_tags, write_dicom_series
from ct2mri_cli.io.volumes import read_volume
from tests.helpers import fast_weights
from tests.test_volume_io import _tilted_image, hu_volume
from tests.test_volume_io import write_dicom_series as write_ct_series

STUDY, FRAME = "1.2.826.0.1.3680043.2.1125.900", "1.2.826.0.1.3680043.2.1125.901"
PATIENT = {
    "0010|0010": "DOE^JANE",
    "0010|0020": "P-0042",
    "0008|0020": "20261130",
    "0020|0052": FRAME,
    "0020|0011": "3",
}


def _ct_series(image: sitk.Image, folder, series_uid="1.2.826.0.1.3680043.2.1125.902"):
    write_ct_series(image, folder, series_uid, extra_tags={**PATIENT, "0020|000d": STUDY})
    return folder


def _first_file_tags(folder):
    return read_dicom_tags(str(sorted(folder.iterdir())[0]))


def test_the_synthetic_series_shares_the_cts_study_frame_and_geometry(tmp_path):
    ct = read_volume(_ct_series(_tilted_image(hu_volume(shape=(24, 20, 12)), 15.0), tmp_path / "ct"))
    values = np.random.default_rng(0).random(ct.shape)
    write_dicom_series(values, ct, tmp_path / "syn", "SYNTHETIC T1 - NOT FOR DIAGNOSIS", "made by ct2mri", "ct2mri 9")
    back = read_volume(tmp_path / "syn")
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)  # the tilted (sheared) geometry too
    np.testing.assert_allclose(back.data / 1000.0, values, atol=0.5e-3 + 1e-9)
    tags = _first_file_tags(tmp_path / "syn")
    ct_tags = _first_file_tags(tmp_path / "ct")
    assert tags["0020|000d"] == STUDY and tags["0020|0052"] == FRAME
    assert tags["0010|0010"] == "DOE^JANE" and tags["0010|0020"] == "P-0042" and tags["0008|0020"] == "20261130"
    assert tags["0020|000e"] != ct_tags["0020|000e"] and tags["0008|0018"] != ct_tags["0008|0018"]
    assert tags["0008|0060"] == "MR" and tags["0008|0008"] == "DERIVED\\SECONDARY"
    assert "NOT FOR DIAGNOSIS" in tags["0008|103e"] and tags["0020|0011"] == "1003"
    uids = {read_dicom_tags(str(p))["0008|0018"] for p in (tmp_path / "syn").iterdir()}
    assert len(uids) == 12  # one SOP instance per slice


def test_a_nifti_input_gets_fresh_uids_and_its_own_geometry(tmp_path):
    from tests.test_volume_io import oblique_affine, save_nifti

    ct = read_volume(
        save_nifti(tmp_path / "smith_john_mrn1234.nii.gz", hu_volume(shape=(16, 14, 10)), oblique_affine())
    )
    values = np.random.default_rng(1).random(ct.shape)
    write_dicom_series(values, ct, tmp_path / "a", "SYNTHETIC", "c", "s")
    write_dicom_series(values, ct, tmp_path / "b", "SYNTHETIC", "c", "s")
    np.testing.assert_allclose(read_volume(tmp_path / "a").affine, ct.affine, atol=1e-4)
    a, b = _first_file_tags(tmp_path / "a"), _first_file_tags(tmp_path / "b")
    assert a["0020|000d"].startswith("2.25.") and a["0020|000d"] != b["0020|000d"]
    assert a["0020|0052"] != b["0020|0052"]
    # a file name is not a patient ID: nothing of it reaches the patient tags
    assert a["0010|0020"] == "UNKNOWN" and a["0010|0010"] == "ANONYMOUS"
    assert not any("smith" in value.lower() for value in a.values())


def test_translate_writes_a_dicom_series_per_case(tmp_path, capsys):
    from tests.conftest import make_head_phantom

    phantom = make_head_phantom(spacing=(3.0, 3.0, 3.0))
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.rint(phantom.hu).astype(np.int16).transpose(2, 1, 0)))
    image.SetSpacing((3.0, 3.0, 3.0))
    image.SetOrigin(tuple(float(v) for v in phantom.affine[:3, 3] * [-1, -1, 1]))
    image.SetDirection([-1, 0, 0, 0, -1, 0, 0, 0, 1])
    _ct_series(image, tmp_path / "cases" / "head")
    weights = fast_weights(tmp_path / "w.safetensors")
    out = tmp_path / "out"
    args = [
        "translate",
        str(tmp_path / "cases"),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--device",
        "cpu",
        "--output-format",
        "dicom",
    ]
    assert main(args) == 0
    series = out / "head_synT1"
    assert series.is_dir() and (out / "head_synT1.json").is_file()
    ct, back = read_volume(tmp_path / "cases" / "head"), read_volume(series)
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)
    tags = _first_file_tags(series)
    assert tags["0020|000d"] == STUDY and tags["0020|0052"] == FRAME and "NOT FOR DIAGNOSIS" in tags["0008|103e"]
    assert "weights sha256" in tags["0020|4000"]
    capsys.readouterr()
    assert main(args) == 1  # an existing series is not overwritten without --force
    assert "head_synT1 exists (1 of 1 cases have outputs already); use --skip-existing" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ct2mri_status_1-of-1.jsonl", "head_synT1", "head_synT1.json"]


def test_the_axial_ct_series_is_picked_from_a_study(tmp_path):
    """A study folder holding a bigger MR series and a localiser beside the axial CT."""
    from tests.test_volume_io import oblique_affine, save_nifti

    nifti = save_nifti(tmp_path / "ref.nii.gz", hu_volume(shape=(16, 12, 9)), oblique_affine())
    ct_image = sitk.Cast(sitk.ReadImage(str(nifti)), sitk.sitkInt16)
    study = tmp_path / "study"
    write_ct_series(ct_image, study, "1.2.3.10")
    bigger = sitk.Cast(
        sitk.ReadImage(str(save_nifti(tmp_path / "big.nii.gz", hu_volume(shape=(16, 12, 14)), oblique_affine()))),
        sitk.sitkInt16,
    )
    write_ct_series(bigger, study, "1.2.3.20", extra_tags={"0008|0060": "MR"})
    write_ct_series(bigger, study, "1.2.3.30", extra_tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    volume = read_volume(study)
    assert volume.description.startswith("DICOM series 1.2.3.10 (9 files)")
    (note,) = [n for n in volume.notes if "DICOM series" in n]
    assert "using 1.2.3.10 (9 files), not a localiser" in note  # the MR series ranks below both
    # without the localiser, the MR series loses as not CT
    other = tmp_path / "study2"
    write_ct_series(ct_image, other, "1.2.3.10")
    write_ct_series(bigger, other, "1.2.3.20", extra_tags={"0008|0060": "MR"})
    assert any("using 1.2.3.10 (9 files), the CT series" in n for n in read_volume(other).notes)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_head_ct_as_dicom_round_trips(tmp_path, head_ct):
    """The real head CT written as a DICOM series, translated to a DICOM series: the CT's grid to 1e-4 mm."""
    from ct2mri_cli.io.images import sitk_from_array

    image = sitk.Cast(sitk_from_array(head_ct.data.astype(np.int16), head_ct.affine), sitk.sitkInt16)
    _ct_series(image, tmp_path / "cranium")
    weights = fast_weights(tmp_path / "w.safetensors")
    out = tmp_path / "syn"
    assert (
        main(
            [
                "-q",
                "translate",
                str(tmp_path / "cranium"),
                str(out),
                "--weights",
                str(weights),
                "--device",
                "cpu",
                "--output-format",
                "dicom",
            ]
        )
        == 0
    )
    ct, back = read_volume(tmp_path / "cranium"), read_volume(out)
    assert back.shape == ct.shape
    np.testing.assert_allclose(back.affine, ct.affine, atol=1e-4)

    def slices(folder):  # (position, orientation, pixel spacing) of every slice file, by position
        found = []
        for path in folder.iterdir():
            tags = read_dicom_tags(str(path))
            found.append([float(v) for key in ("0020|0032", "0020|0037", "0028|0030") for v in tags[key].split("\\")])
        return np.array(sorted(found))

    np.testing.assert_allclose(slices(out), slices(tmp_path / "cranium"), atol=1e-4)
    tags = _first_file_tags(out)
    assert tags["0020|000d"] == STUDY and tags["0020|0052"] == FRAME
    assert "NOT FOR DIAGNOSIS" in tags["0008|103e"] and "NOT FOR DIAGNOSIS" in tags["0020|4000"]
    assert back.data.max() > 0 and back.data.min() >= 0
