"""Locating and loading the source brains: installed nilearn, a nilearn wheel, Colin27."""

import zipfile

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.data import sources, templates
from ct2mri_cli.errors import Ct2mriError


def _nifti_bytes(tmp_path, name, data, affine=None):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path.read_bytes()


def _fake_wheel(tmp_path, members=None, name="nilearn-0.14.1-py3-none-any.whl"):
    """A zip laid out like the nilearn wheel, holding tiny uint8 MNI look-alikes."""
    rng = np.random.default_rng(0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-5, -6, -4]
    data = {
        "t1": rng.integers(0, 256, (10, 12, 8), dtype=np.uint8),
        "gm": rng.integers(0, 128, (10, 12, 8), dtype=np.uint8),
        "wm": rng.integers(0, 128, (10, 12, 8), dtype=np.uint8),
    }
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    wheel = tmp_path / name
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("nilearn/__init__.py", "")
        for key, member in templates.MNI_MEMBERS.items():
            if members is None or key in members:
                archive.writestr(member, _nifti_bytes(src, f"{key}.nii.gz", data[key], affine))
    return wheel, data, affine


@pytest.fixture
def no_installed_nilearn(monkeypatch, tmp_path):
    monkeypatch.setattr(templates, "_installed_nilearn_data", lambda: None)
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CT2MRI_NILEARN_WHEEL", raising=False)


def test_mni_files_are_extracted_from_the_wheel_named_by_the_environment(tmp_path, monkeypatch, no_installed_nilearn):
    wheel, data, affine = _fake_wheel(tmp_path)
    monkeypatch.setenv("CT2MRI_NILEARN_WHEEL", str(wheel))
    paths = templates.find_mni_files()
    assert set(paths) == {"t1", "gm", "wm"}
    for key, path in paths.items():
        assert path.parent == tmp_path / "cache" / templates.MNI_CACHE_SUBDIR
        with zipfile.ZipFile(wheel) as archive:
            assert path.read_bytes() == archive.read(templates.MNI_MEMBERS[key])
    tpl = templates.load_template("mni")
    assert tpl.name == "mni" and not tpl.head and tpl.shape == (10, 12, 8)
    np.testing.assert_array_equal(tpl.t1, data["t1"].astype(np.float32))
    np.testing.assert_allclose(tpl.gm, data["gm"] / 255.0, atol=1e-6)
    np.testing.assert_allclose(tpl.wm, data["wm"] / 255.0, atol=1e-6)
    np.testing.assert_allclose(tpl.affine, affine)


def test_a_wheel_in_the_cache_folder_is_found_and_only_the_three_files_are_extracted(tmp_path, no_installed_nilearn):
    cache = tmp_path / "cache"
    cache.mkdir()
    _fake_wheel(cache)
    paths = templates.find_mni_files()
    extracted = sorted(p.name for p in (cache / templates.MNI_CACHE_SUBDIR).iterdir())
    assert extracted == sorted(p.name for p in paths.values())
    assert not (cache / "nilearn").exists()


def test_extracted_files_are_reused_without_the_wheel(tmp_path, monkeypatch, no_installed_nilearn):
    wheel, _, _ = _fake_wheel(tmp_path)
    monkeypatch.setenv("CT2MRI_NILEARN_WHEEL", str(wheel))
    first = templates.find_mni_files()
    monkeypatch.delenv("CT2MRI_NILEARN_WHEEL")
    wheel.unlink()
    assert templates.find_mni_files() == first


def test_missing_mni_says_how_to_get_it(no_installed_nilearn):
    with pytest.raises(Ct2mriError, match=r"pip download --no-deps nilearn==0\.14\.1 -d ~/\.cache/ct2mri"):
        templates.find_mni_files()


def test_wheel_env_pointing_nowhere_is_an_error(tmp_path, monkeypatch, no_installed_nilearn):
    monkeypatch.setenv("CT2MRI_NILEARN_WHEEL", str(tmp_path / "nope.whl"))
    with pytest.raises(Ct2mriError, match="nope.whl: no such file"):
        templates.find_mni_files()


def test_wheel_without_the_template_names_the_missing_member(tmp_path, monkeypatch, no_installed_nilearn):
    wheel, _, _ = _fake_wheel(tmp_path, members={"t1", "gm"})
    monkeypatch.setenv("CT2MRI_NILEARN_WHEEL", str(wheel))
    with pytest.raises(Ct2mriError, match="mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"):
        templates.find_mni_files()
    assert not (
        tmp_path / "cache" / templates.MNI_CACHE_SUBDIR / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"
    ).exists()


def test_not_a_zip_is_an_error(tmp_path, monkeypatch, no_installed_nilearn):
    bad = tmp_path / "nilearn-0.14.1-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    monkeypatch.setenv("CT2MRI_NILEARN_WHEEL", str(bad))
    with pytest.raises(Ct2mriError, match="not a readable wheel"):
        templates.find_mni_files()


def test_an_installed_nilearn_is_used_first(tmp_path, monkeypatch):
    root = tmp_path / "site"
    for member in templates.MNI_MEMBERS.values():
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        (root / member).write_bytes(b"x")
    monkeypatch.setattr(templates, "_installed_nilearn_data", lambda: root)
    monkeypatch.setenv("CT2MRI_CACHE", str(tmp_path / "cache"))
    paths = templates.find_mni_files()
    assert paths == {key: root / member for key, member in templates.MNI_MEMBERS.items()}


def test_colin27_from_a_folder(tmp_path, monkeypatch):
    head = np.zeros((6, 7, 5), dtype=np.uint8)
    head[1:5, 1:6, 1:4] = 80
    brain = np.zeros_like(head)
    brain[2:4, 2:5, 2:3] = 80
    (tmp_path / "ch2.nii.gz").write_bytes(_nifti_bytes(tmp_path, "a.nii.gz", head))
    (tmp_path / "ch2bet.nii.gz").write_bytes(_nifti_bytes(tmp_path, "b.nii.gz", brain))
    monkeypatch.setenv("CT2MRI_COLIN27_DIR", str(tmp_path))
    tpl = templates.load_template("colin27")
    assert tpl.head and tpl.gm is None
    np.testing.assert_array_equal(tpl.brain, brain > 0)
    np.testing.assert_array_equal(tpl.t1, head.astype(np.float32))


def test_colin27_on_different_grids_is_refused(tmp_path, monkeypatch):
    (tmp_path / "ch2.nii.gz").write_bytes(_nifti_bytes(tmp_path, "a.nii.gz", np.ones((6, 7, 5), np.uint8)))
    (tmp_path / "ch2bet.nii.gz").write_bytes(_nifti_bytes(tmp_path, "b.nii.gz", np.ones((6, 7, 4), np.uint8)))
    monkeypatch.setenv("CT2MRI_COLIN27_DIR", str(tmp_path))
    with pytest.raises(Ct2mriError, match="ch2bet.nii.gz: not on the grid"):
        templates.load_template("colin27")


def test_missing_colin27_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("CT2MRI_COLIN27_DIR", str(tmp_path))
    with pytest.raises(
        Ct2mriError, match="ch2.nii.gz: Colin27 template not found; install the Debian package mricron-data"
    ):
        templates.load_template("colin27")


def test_unknown_source():
    with pytest.raises(Ct2mriError, match="unknown template source 'foo'"):
        templates.load_template("foo")


def test_the_mni_notice_names_the_copyright_holder_and_terms():
    text = templates.mni_license_text()
    holder = (
        "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre,\n    Montreal Neurological Institute"
    )
    assert holder + ", McGill University." in text
    assert "without fee" in text and "copyright notice" in text and "as is" in text


@pytest.mark.realdata
def test_the_real_templates_load():
    for name in ("mni", "colin27"):
        reason = sources.source_missing(name)
        if reason:
            pytest.skip(reason)
    mni = templates.load_template("mni")
    colin = templates.load_template("colin27")
    assert mni.shape == (197, 233, 189) and colin.shape == (181, 217, 181)
    assert 0.0 <= mni.gm.min() and mni.gm.max() <= 1.0 and mni.wm.max() > 0.99
    np.testing.assert_allclose(np.diag(mni.affine)[:3], 1.0)

    # both live in MNI space: their brain centroids agree within a centimetre
    def centroid(mask, affine):
        return np.argwhere(mask).mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]

    assert np.linalg.norm(centroid(mni.t1 > 0, mni.affine) - centroid(colin.brain, colin.affine)) < 10.0
