"""Scan checks: each named check fires on the scan it is for, and stays quiet on a normal one."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.cli.app import main
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.preprocessing import checks
from tests.conftest import make_head_phantom
from tests.helpers import fast_weights


@pytest.fixture(scope="module")
def phantom():
    return make_head_phantom(spacing=(3.0, 3.0, 3.0))


def _volume(hu, affine):
    return Volume(data=np.asarray(hu, dtype=np.float32), affine=np.asarray(affine, dtype=float), description="test")


def test_a_ct_stored_without_its_rescale_is_shifted_back(phantom):
    for padding in (-2000.0, -3024.0):
        stored = phantom.hu + 1024.0
        stored[:3] = padding  # outside the field of view
        fixed, check = checks.check_hu_scale(_volume(stored, phantom.affine))
        assert check.verdict == "corrected" and "1024" in check.message
        inside = np.s_[3:]
        np.testing.assert_allclose(np.asarray(fixed.data)[inside], phantom.hu[inside], atol=1e-3)
        assert np.all(np.asarray(fixed.data)[:3] == -1024.0)


def test_hu_with_padding_passes_and_padding_becomes_air(phantom):
    hu = phantom.hu.copy()
    hu[:2] = -3024.0
    fixed, check = checks.check_hu_scale(_volume(hu, phantom.affine))
    assert check.verdict == "pass" and "padding" in check.message
    assert np.asarray(fixed.data).min() == -1024.0
    same, check = checks.check_hu_scale(_volume(phantom.hu, phantom.affine))
    assert check.verdict == "pass" and same.data is not None and check.message == ""


def _exterior_air(hu):
    """The air around the head (below -500 HU and connected to the scan's sides)."""
    return checks._border_connected(np.asarray(hu) < -500, (0, 1, 2))


def test_hu_with_air_stored_as_zero_is_not_shifted_and_its_air_restored(phantom):
    """Air written as 0 around a head in HU (uniform 1100 HU bone) is air, not a shifted scale."""
    stored = phantom.hu.copy()
    outside = _exterior_air(stored)
    stored[outside] = 0.0
    fixed, check = checks.check_hu_scale(_volume(stored, phantom.affine))
    assert check.verdict == "pass" and check.value == "HU" and "fill value 0" in check.message
    data = np.asarray(fixed.data)
    np.testing.assert_array_equal(data[~outside], phantom.hu[~outside])
    assert np.all(data[outside] == -1024.0)


def test_real_head_ct_with_air_zero_keeps_its_scale_and_its_brain(head_ct, head_ct_mask):
    data = np.asarray(head_ct.data, dtype=np.float32)
    outside = _exterior_air(data)
    stored = data.copy()
    stored[outside] = 0.0
    fixed, check = checks.check_hu_scale(head_ct.with_data(stored))
    assert check.verdict == "pass" and check.value == "HU"
    changed = (np.asarray(fixed.data) != data) & ~outside
    # only voxels at exactly 0 HU touching the air around the head are taken for fill as well
    assert np.all(data[changed] == 0.0) and changed.mean() < 1e-3 and not (changed & head_ct_mask).any()
    from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

    mask = extract_brain_ct(fixed)
    dice = 2 * np.count_nonzero(mask & head_ct_mask) / (mask.sum() + head_ct_mask.sum())
    assert dice > 0.99


def test_hu_with_air_at_minus_1024_and_padding_at_minus_3024_passes(head_ct):
    data = np.maximum(np.asarray(head_ct.data, dtype=np.float32), -1024.0)
    padded = data.copy()
    padded[:12] = np.where(_exterior_air(data)[:12], -3024.0, data[:12])
    fixed, check = checks.check_hu_scale(head_ct.with_data(padded))
    assert check.verdict == "pass" and check.value == "HU" and "padding" in check.message
    np.testing.assert_array_equal(np.asarray(fixed.data)[12:], data[12:])


def test_real_head_ct_stored_as_hu_plus_1024_is_shifted_back_exactly(head_ct):
    data = np.asarray(head_ct.data, dtype=np.float32)
    for stored in (data + 1024.0, np.clip(data + 1024.0, 0.0, None)):
        fixed, check = checks.check_hu_scale(head_ct.with_data(stored))
        assert check.verdict == "corrected" and check.value == "HU + 1024"
        np.testing.assert_allclose(np.asarray(fixed.data), np.maximum(data, -1024.0), atol=1e-3)


def test_a_scale_the_evidence_disagrees_on_is_refused(phantom):
    """Air outside the head and soft tissue near 1060, yet values at -600: neither HU nor HU + 1024."""
    stored = phantom.hu + 1024.0
    stored[phantom.brain] -= 1700.0 * (np.arange(phantom.brain.sum()) % 10 == 0)
    with pytest.raises(Ct2mriError, match="cannot tell the CT's intensity scale"):
        checks.check_hu_scale(_volume(stored, phantom.affine))


def test_a_header_whose_intercept_was_applied_vetoes_the_shift(phantom):
    import nibabel as nib

    image = nib.Nifti1Image((phantom.hu + 1024.0).astype(np.float32), phantom.affine)
    image.header.set_slope_inter(1.0, -1024.0)
    volume = Volume(
        data=(phantom.hu + 1024.0).astype(np.float32),
        affine=phantom.affine,
        header=image.header,
        description="rescaled",
    )
    with pytest.raises(Ct2mriError, match="rescale intercept .-1024. was already applied"):
        checks.check_hu_scale(volume)


def test_an_mri_given_as_ct_is_not_taken_for_hu_with_air_zero(colin):
    head, _ = colin
    for scale in (1.0, 10.0):
        data = np.asarray(head.data, dtype=np.float32) * scale
        fixed, check = checks.check_hu_scale(head.with_data(data))
        assert check.value == "HU" and np.asarray(fixed.data).min() >= 0.0  # left for the HU test to refuse


def test_thick_slices_are_named(phantom):
    thick = np.diag([1.0, 1.0, 4.5, 1.0])
    assert checks.check_slice_thickness(_volume(phantom.hu[:, :, :20], thick)).verdict == "warning"
    assert checks.check_slice_thickness(_volume(phantom.hu, phantom.affine)).verdict == "pass"
    tilted = np.array([[0, 0, 4.5, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1]])  # slices along the first axis
    assert checks.check_slice_thickness(_volume(phantom.hu, tilted)).verdict == "pass"


def test_a_brain_cut_by_the_scan_is_named(phantom):
    whole = checks.check_coverage(phantom.brain, phantom.affine, "test")
    assert whole.verdict == "pass" and whole.value <= checks.EDGE_AREA_FRACTION
    z = np.flatnonzero(phantom.brain.any(axis=(0, 1)))
    keep = z.min() + int(0.6 * (z.max() - z.min()))  # the top 40 % of the brain missing
    cut = checks.check_coverage(phantom.brain[:, :, :keep], phantom.affine, "test")
    assert cut.verdict == "warning" and "top" in cut.message
    # the same head stored top slice first: still its top that is missing
    flipped = phantom.affine @ np.diag([1, 1, -1, 1])
    assert "top of the scan" in checks.check_coverage(phantom.brain[:, :, :keep][:, :, ::-1], flipped, "test").message


def test_brain_volume_against_the_adult_range(phantom):
    spacing = (1.0, 1.0, 1.0)
    mask = np.zeros((120, 120, 120), dtype=bool)
    mask[:110, :110, :110] = True  # 1331 mL
    assert checks.check_brain_volume(mask, spacing, "t").verdict == "pass"
    mask[:, :, 60:] = False  # 726 mL
    small = checks.check_brain_volume(mask, spacing, "t")
    assert small.verdict == "warning" and small.value == pytest.approx(726.0)
    with pytest.raises(Ct2mriError, match="far below an adult brain"):
        checks.check_brain_volume(mask[:, :, :20], spacing, "t")
    assert checks.check_brain_volume(mask[:, :, :20], spacing, "t", automatic=False).verdict == "warning"


def test_a_mask_that_leaks_into_the_neck_is_named(phantom):
    inside = checks.check_mask_in_skull(phantom.intracranial, phantom.hu, phantom.spacing, "t")
    assert inside.verdict == "pass" and inside.value <= checks.OUTSIDE_SKULL_FRACTION
    leaky = checks.check_mask_in_skull(
        phantom.intracranial | phantom.neck | phantom.cord, phantom.hu, phantom.spacing, "t"
    )
    assert leaky.verdict == "warning" and leaky.name == "mask_in_skull" and "outside the cavity" in leaky.message
    # the share named is the neck's: an independent count of the voxels added
    added = (phantom.neck | phantom.cord) & ~phantom.intracranial
    share = added.sum() / (phantom.intracranial | added).sum()
    assert leaky.value == pytest.approx(share, abs=0.02)


def test_two_large_mask_parts_are_named():
    mask = np.zeros((40, 40, 40), dtype=bool)
    mask[2:18, 2:18, 2:18] = True
    assert checks.check_components(mask, "t").verdict == "pass"
    mask[25:35, 25:35, 25:35] = True
    assert checks.check_components(mask, "t").verdict == "warning"


def test_checks_reach_the_sidecar_the_summary_and_strict(tmp_path, phantom, capsys):
    weights = fast_weights(tmp_path / "w.safetensors")
    stored = tmp_path / "stored.nii.gz"
    nib.save(nib.Nifti1Image((phantom.hu + 1024.0).astype(np.int16), phantom.affine), str(stored))
    thick = tmp_path / "thick.nii.gz"
    nib.save(
        nib.Nifti1Image(phantom.hu[:, :, ::2].astype(np.int16), phantom.affine @ np.diag([1, 1, 2, 1])), str(thick)
    )
    out = tmp_path / "out"
    assert (
        main(["translate", str(stored), str(thick), "-o", str(out), "--weights", str(weights), "--device", "cpu"]) == 0
    )
    err = capsys.readouterr().err
    assert "2 translated (2 with scan-check warnings or corrections)" in err
    assert "stored: hu_scale" in err and "thick: slice_thickness" in " ".join(err.split())
    sidecar = json.loads((out / "stored_synT1.json").read_text())
    by_name = {c["name"]: c for c in sidecar["checks"]}
    assert set(by_name) == {
        "hu_scale",
        "gantry_tilt",
        "slice_thickness",
        "brain_volume",
        "coverage",
        "mask_components",
        "mask_in_skull",
        "trust",
    }
    assert by_name["hu_scale"]["verdict"] == "corrected" and by_name["slice_thickness"]["verdict"] == "pass"
    assert 850 < by_name["brain_volume"]["value"] < 1150  # the phantom's brain (884 mL) and CSF, found after the shift

    shutil.rmtree(out)
    assert main(["translate", str(thick), str(tmp_path / "t.nii.gz"), "--weights", str(weights), "--strict"]) == 1
    assert "--strict: slice_thickness" in capsys.readouterr().err and not (tmp_path / "t.nii.gz").exists()


def test_a_tilted_dicom_series_is_translated_on_its_true_geometry(tmp_path, phantom, capsys):
    """The gantry-tilted series is read on its slice positions, and the output lands on them."""
    from tests.test_volume_io import _tilted_image, write_dicom_series

    image = _tilted_image(phantom.hu, 20.0, spacing=phantom.spacing)
    write_dicom_series(image, tmp_path / "tilted", "1.2.826.0.1.3680043.2.1125.30", slope=1.0, intercept=0.0)
    weights = fast_weights(tmp_path / "w.safetensors")
    out = tmp_path / "syn.nii.gz"
    assert (
        main(["-q", "translate", str(tmp_path / "tilted"), str(out), "--weights", str(weights), "--device", "cpu"]) == 0
    )
    written = nib.load(str(out))
    assert written.shape == phantom.hu.shape and np.asarray(written.dataobj).max() > 0
    to_ras = np.diag([-1.0, -1.0, 1.0])
    for k in range(0, phantom.hu.shape[2], 7):  # every written slice sits at its acquired position
        expected = to_ras @ np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
        assert np.linalg.norm((written.affine @ [0, 0, k, 1])[:3] - expected) < 0.5
    sidecar = json.loads((tmp_path / "syn.json").read_text())
    tilt = next(c for c in sidecar["checks"] if c["name"] == "gantry_tilt")
    assert tilt["verdict"] == "corrected" and tilt["value"] == pytest.approx(20.0, abs=0.01)
    capsys.readouterr()
