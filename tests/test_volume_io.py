"""Reading and writing volumes: formats, geometry, and the refusals of unusable inputs."""

from __future__ import annotations

import io
import plistlib
import tarfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.volumes import Volume, read_volume, write_nifti


def rotation(deg_z: float, deg_x: float) -> np.ndarray:
    a, b = np.deg2rad(deg_z), np.deg2rad(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def oblique_affine(spacing=(0.8, 0.9, 2.0), deg_z=15.0, deg_x=10.0, origin=(-40.0, 30.0, -20.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation(deg_z, deg_x) @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray, qcode: int = 1, scode: int = 1) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=qcode)
    img.header.set_sform(affine, code=scode)
    nib.save(img, str(path))
    return path


def hu_volume(shape=(24, 20, 10), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(-500, 750, size=shape) * 2).astype(np.int16)


# --- NIfTI -------------------------------------------------------------------------------------


def test_nifti_read_gives_data_affine_header(tmp_path):
    data = hu_volume()
    affine = oblique_affine()
    path = save_nifti(tmp_path / "ct.nii.gz", data, affine, qcode=1, scode=4)
    vol = read_volume(path)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, data.astype(np.float32))
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    assert vol.header is not None and int(vol.header["sform_code"]) == 4
    assert vol.description == "NIfTI" and vol.path == path
    np.testing.assert_allclose(vol.spacing, (0.8, 0.9, 2.0), atol=1e-6)


def test_write_nifti_keeps_affine_codes_and_is_atomic(tmp_path):
    affine = oblique_affine()
    src = save_nifti(tmp_path / "in.nii.gz", hu_volume(), affine, qcode=2, scode=4)
    ref = read_volume(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    values = np.linspace(0, 1, ref.data.size, dtype=np.float32).reshape(ref.shape)
    write_nifti(values, out_dir / "x.nii.gz", ref, descrip="synthetic, not for diagnosis")
    assert sorted(p.name for p in out_dir.iterdir()) == ["x.nii.gz"]
    img = nib.load(str(out_dir / "x.nii.gz"))
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), values)
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-6)
    assert int(img.header["qform_code"]) == 2 and int(img.header["sform_code"]) == 4
    np.testing.assert_allclose(img.header.get_qform(), affine, atol=1e-5)
    np.testing.assert_allclose(img.header.get_sform(), affine, atol=1e-6)
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b"synthetic, not for diagnosis"


def test_write_nifti_from_headerless_reference_sets_scanner_codes(tmp_path):
    affine = np.diag([-1.5, 1.2, 3.0, 1.0])
    affine[:3, 3] = [10, -20, 5]
    ref = Volume(np.zeros((5, 6, 7), np.float32), affine, description="DICOM series 1.2 (7 files)")
    write_nifti(np.ones((5, 6, 7)), tmp_path / "o.nii", ref)
    img = nib.load(str(tmp_path / "o.nii"))
    np.testing.assert_allclose(img.affine, affine)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1


def test_write_nifti_refuses_wrong_shape_and_leaves_nothing(tmp_path):
    ref = Volume(np.zeros((5, 6, 7), np.float32), np.eye(4))
    with pytest.raises(Ct2mriError, match="shape"):
        write_nifti(np.zeros((5, 6, 8)), tmp_path / "o.nii.gz", ref)
    with pytest.raises(Ct2mriError, match="NaN"):
        write_nifti(np.full((5, 6, 7), np.nan), tmp_path / "o.nii.gz", ref)
    with pytest.raises(Ct2mriError, match=r"\.nii"):
        write_nifti(np.zeros((5, 6, 7)), tmp_path / "o.png", ref)
    assert list(tmp_path.iterdir()) == []


def test_single_volume_4d_is_squeezed(tmp_path):
    data = hu_volume()[..., None]
    affine = oblique_affine()
    vol = read_volume(save_nifti(tmp_path / "one.nii.gz", data, affine))
    assert vol.shape == (24, 20, 10) and vol.data.ndim == 3
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)


@pytest.mark.parametrize(
    "name, data, affine, pattern",
    [
        ("flat.nii.gz", np.arange(120, dtype=np.float32).reshape(10, 12), np.eye(4), "2D image"),
        ("slice.nii.gz", np.arange(120, dtype=np.float32).reshape(10, 12, 1), np.eye(4), "2D image"),
        ("series.nii.gz", np.arange(1440, dtype=np.float32).reshape(10, 12, 4, 3), np.eye(4), "holds 3 volumes"),
        ("zeros.nii.gz", np.zeros((8, 9, 10), np.float32), np.eye(4), "constant"),
        ("empty.nii.gz", np.zeros((0, 9, 10), np.float32), np.eye(4), "empty"),
    ],
)
def test_unusable_nifti_is_refused(tmp_path, name, data, affine, pattern):
    path = save_nifti(tmp_path / name, data, affine)
    with pytest.raises(Ct2mriError, match=pattern) as info:
        read_volume(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused(tmp_path, bad):
    data = np.random.default_rng(1).normal(size=(8, 9, 10)).astype(np.float32)
    data[3, 4, 5] = bad
    data[1, 1, 1] = bad
    path = save_nifti(tmp_path / "nan.nii.gz", data, np.eye(4))
    with pytest.raises(Ct2mriError, match="2 voxels are NaN or Inf"):
        read_volume(path)


def test_sheared_and_degenerate_affines_are_refused(tmp_path):
    data = hu_volume().astype(np.float32)
    shear = np.eye(4)
    shear[0, 1] = 0.4
    img = nib.Nifti1Image(data, shear)
    img.header.set_sform(shear, code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, str(tmp_path / "shear.nii.gz"))
    with pytest.raises(Ct2mriError, match="not orthonormal"):
        read_volume(tmp_path / "shear.nii.gz")

    flat = np.diag([1.0, 1.0, 0.0, 1.0])
    header = nib.Nifti1Header()
    header.set_sform(flat, code=1)
    nib.save(nib.Nifti1Image(data, None, header=header), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(Ct2mriError, match="degenerate"):
        read_volume(tmp_path / "flat.nii.gz")


def test_missing_and_non_image_files(tmp_path):
    with pytest.raises(Ct2mriError, match="no such file"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "notes.nii.gz").write_text("not an image")
    with pytest.raises(Ct2mriError, match="not a readable NIfTI"):
        read_volume(tmp_path / "notes.nii.gz")
    (tmp_path / "notes.txt").write_text("not an image either")
    with pytest.raises(Ct2mriError, match="not a readable image"):
        read_volume(tmp_path / "notes.txt")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(Ct2mriError, match="no DICOM series"):
        read_volume(tmp_path / "empty_dir")


# --- NRRD and MetaImage ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_nrrd_and_metaimage_match_nifti(tmp_path, suffix):
    nifti = save_nifti(tmp_path / "ref.nii.gz", hu_volume(), oblique_affine())
    image = sitk.ReadImage(str(nifti))  # SimpleITK's own NIfTI reader, independent of ours
    sitk.WriteImage(image, str(tmp_path / f"copy{suffix}"))
    ref, other = read_volume(nifti), read_volume(tmp_path / f"copy{suffix}")
    np.testing.assert_array_equal(other.data, ref.data)
    np.testing.assert_allclose(other.affine, ref.affine, atol=1e-4)
    assert other.header is None


def test_multicomponent_image_is_refused(tmp_path):
    image = sitk.Image([6, 7, 8], sitk.sitkVectorFloat32, 3)
    sitk.WriteImage(image, str(tmp_path / "vec.mha"))
    with pytest.raises(Ct2mriError, match="3 components"):
        read_volume(tmp_path / "vec.mha")


def test_4d_metaimage_with_several_volumes_is_refused(tmp_path):
    image = sitk.GetImageFromArray(np.arange(2 * 5 * 6 * 7, dtype=np.float32).reshape(2, 5, 6, 7), isVector=False)
    sitk.WriteImage(image, str(tmp_path / "four.mha"))
    with pytest.raises(Ct2mriError, match="holds 2 volumes"):
        read_volume(tmp_path / "four.mha")


# --- DICOM -------------------------------------------------------------------------------------


def write_dicom_series(
    image: sitk.Image,
    folder: Path,
    series_uid: str,
    slope: float = 2.0,
    intercept: float = -1024.0,
    positions=None,
    extra_tags=None,
) -> None:
    """Write a 3D int16 image as a CT series, one file per slice, with rescale tags; slice k sits
    at the image's own voxel (0, 0, k), or at ``positions[k]`` (LPS mm) when given.  ``extra_tags``
    (tag -> value) go on every slice."""
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1]))
    import locale

    saved_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetSize()[2]):
        plane = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(
                f"{v:.6f}"
                for v in (image.TransformIndexToPhysicalPoint((0, 0, k)) if positions is None else positions[k])
            ),
            "0020|0037": orientation,
            "0018|0050": f"{image.GetSpacing()[2]:.6f}",
            "0028|1052": f"{intercept:g}",
            "0028|1053": f"{slope:g}",
            **(extra_tags or {}),
        }
        for key, value in tags.items():
            plane.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{series_uid}_{k:03d}.dcm"))
        writer.Execute(plane)
    locale.setlocale(locale.LC_ALL, saved_locale)


def test_dicom_series_reads_back_like_its_nifti(tmp_path):
    data = hu_volume(shape=(24, 20, 10))
    nifti = save_nifti(tmp_path / "ref.nii.gz", data, oblique_affine())
    image = sitk.Cast(sitk.ReadImage(str(nifti)), sitk.sitkInt16)
    write_dicom_series(image, tmp_path / "dicom", "1.2.826.0.1.3680043.2.1125.7")
    dicom, ref = read_volume(tmp_path / "dicom"), read_volume(nifti)
    # values are even, stored as (HU + 1024) / 2: equality proves slope and intercept were applied
    np.testing.assert_array_equal(dicom.data, ref.data)
    np.testing.assert_allclose(dicom.affine, ref.affine, atol=1e-4)
    assert dicom.description == "DICOM series 1.2.826.0.1.3680043.2.1125.7 (10 files)"
    assert dicom.notes == []


def test_dicom_folder_with_two_series_picks_largest_or_the_uid(tmp_path):
    nifti = save_nifti(tmp_path / "ref.nii.gz", hu_volume(shape=(16, 12, 9)), oblique_affine())
    image = sitk.Cast(sitk.ReadImage(str(nifti)), sitk.sitkInt16)
    write_dicom_series(image, tmp_path / "mixed", "1.2.3.100")
    write_dicom_series(image[:, :, :4], tmp_path / "mixed", "1.2.3.200")
    largest = read_volume(tmp_path / "mixed")
    assert largest.shape == (16, 12, 9)
    assert any("2 DICOM series; using 1.2.3.100 (9 files)" in note for note in largest.notes)
    small = read_volume(tmp_path / "mixed", series_uid="1.2.3.200")
    assert small.shape == (16, 12, 4)
    np.testing.assert_array_equal(small.data, largest.data[:, :, :4])
    with pytest.raises(Ct2mriError, match="no DICOM series 9.9.9"):
        read_volume(tmp_path / "mixed", series_uid="9.9.9")


# --- InVesalius --------------------------------------------------------------------------------


def write_inv3(path: Path, matrix_kji: np.ndarray, spacing=(0.9, 0.8, 1.5), truncate: bool = False) -> None:
    meta = {
        "matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(matrix_kji.shape)},
        "spacing": list(spacing),
        "modality": "CT",
        "orientation": 1,
    }
    raw = matrix_kji.astype("<i2").tobytes()
    if truncate:
        raw = raw[:-2]
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in (("proj/main.plist", plistlib.dumps(meta)), ("proj/matrix.dat", raw)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


def test_invesalius_project_layout_and_assumed_orientation(tmp_path):
    matrix = hu_volume(shape=(7, 9, 11))  # (slice, row, column)
    write_inv3(tmp_path / "p.inv3", matrix)
    vol = read_volume(tmp_path / "p.inv3")
    assert vol.shape == (11, 9, 7)
    np.testing.assert_array_equal(vol.data, matrix.transpose(2, 1, 0).astype(np.float32))
    assert nib.aff2axcodes(vol.affine) == ("L", "A", "S")
    np.testing.assert_allclose(vol.spacing, (0.9, 0.8, 1.5))
    centre = vol.affine @ [5, 4, 3, 1]
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-9)
    # LAS with the matrix's spacing, centred: index (5, 4, 3) sits at the origin
    expected = np.array(
        [
            [-0.9, 0.0, 0.0, 4.5],
            [0.0, 0.8, 0.0, -3.2],
            [0.0, 0.0, 1.5, -4.5],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    np.testing.assert_allclose(vol.affine, expected, atol=1e-12)


def test_broken_invesalius_projects_are_refused(tmp_path):
    write_inv3(tmp_path / "short.inv3", hu_volume(shape=(7, 9, 11)), truncate=True)
    with pytest.raises(Ct2mriError, match="holds 1384 bytes, main.plist promises 1386"):
        read_volume(tmp_path / "short.inv3")
    (tmp_path / "junk.inv3").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(Ct2mriError, match="not a readable InVesalius project"):
        read_volume(tmp_path / "junk.inv3")


@pytest.mark.realdata
def test_real_invesalius_ct_reads_as_a_head_in_hu_with_the_assumed_orientation(head_ct):
    assert head_ct.shape == (256, 256, 108)
    np.testing.assert_allclose(head_ct.spacing, (0.9570312, 0.9570312, 1.5), atol=1e-6)
    assert head_ct.data.min() == -1024 and head_ct.data.max() > 2000
    hu = head_ct.data
    # superior = +k: the head's cross-section shrinks towards the vertex
    area = (hu > -400).sum(axis=(0, 1))
    assert area[-10:].mean() < 0.6 * area[40:60].mean()
    # anterior = +j, given a supine patient: the head holder (dense, outside the head, in air)
    # lies behind the head, i.e. at smaller RAS y than the skull
    mid = hu[:, :, 60]
    head_rows = np.flatnonzero((mid > -400).sum(axis=0) > 40)
    holder_rows = np.flatnonzero((mid[:, : head_rows.min()] > 300).any(axis=0))
    assert holder_rows.size > 0
    y_of = lambda j: (head_ct.affine @ [128, j, 60, 1])[1]
    assert y_of(holder_rows.max()) < y_of(head_rows.min()) < y_of(head_rows.max())


def test_single_dicom_file_asks_for_the_folder(tmp_path):
    nifti = save_nifti(tmp_path / "ref.nii.gz", hu_volume(shape=(16, 12, 3)), np.eye(4))
    write_dicom_series(sitk.Cast(sitk.ReadImage(str(nifti)), sitk.sitkInt16), tmp_path / "d", "1.2.3.9")
    one = sorted((tmp_path / "d").iterdir())[0]
    with pytest.raises(Ct2mriError, match="single DICOM slice"):
        read_volume(one)


def test_itk_blocks_become_one_line_each_and_other_text_passes_through():
    from ct2mri_cli.io.volumes import split_itk_output

    text = (
        "bar 50%\nWARNING: In /src/itkGDCMSeriesFileNames.cxx, line 101\n"
        "GDCMSeriesFileNames (0x55d1c0): No Series were found\n\n"
        "WARNING: In /src/itkImageSeriesReader.hxx, line 478\n"
        "ImageSeriesReader (0x1f): Non uniform sampling or missing slices detected,\n maximum nonuniformity:1.2\n\n"
        "bar 60%\n"
    )
    messages, rest = split_itk_output(text)
    assert messages == [
        "No Series were found",
        "Non uniform sampling or missing slices detected, maximum nonuniformity:1.2",
    ]
    assert rest == "bar 50%\nbar 60%\n"


def test_an_empty_folder_is_one_line_without_itk_noise(tmp_path, capfd):
    from ct2mri_cli.cli.app import main

    (tmp_path / "empty").mkdir()
    assert main(["translate", str(tmp_path / "empty"), str(tmp_path / "o.nii.gz"), "--device", "cpu"]) == 1
    err = capfd.readouterr().err
    assert "WARNING: In" not in err and "No Series" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'empty'}: folder holds no DICOM series"
    ]


def _tilted_image(data, tilt_degrees, spacing=(1.0, 1.0, 2.0)):
    """An LPS image whose slices step along a direction tilted from their normal (gantry tilt)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)).astype(np.int16))
    image.SetSpacing(spacing)
    a = np.radians(tilt_degrees)
    image.SetDirection([1, 0, 0, 0, 1, np.sin(a), 0, 0, np.cos(a)])  # columns: row, column, slice step
    image.SetOrigin((-10.0, 5.0, -30.0))
    return image


def test_a_gantry_tilted_series_lies_on_its_slice_positions(tmp_path):
    data = hu_volume(shape=(24, 20, 12))
    image = _tilted_image(data, 20.0)
    write_dicom_series(image, tmp_path / "tilted", "1.2.826.0.1.3680043.2.1125.20")
    volume = read_volume(tmp_path / "tilted")
    assert any("gantry tilt of 20.0 degrees" in note for note in volume.notes)
    to_ras = np.diag([-1.0, -1.0, 1.0])
    for index in [(0, 0, k) for k in range(12)] + [(23, 19, 11), (5, 7, 3)]:
        world = volume.affine @ np.array([*index, 1.0])
        expected = to_ras @ np.array(image.TransformIndexToPhysicalPoint(index))
        assert np.linalg.norm(world[:3] - expected) < 0.5 * 1e-3, index
    drift = np.linalg.norm(
        (volume.affine @ [0, 0, 11, 1])[:3] - (volume.affine @ [0, 0, 0, 1])[:3] - [0, 0, 22 * np.cos(np.radians(20))]
    )
    assert drift == pytest.approx(22 * np.sin(np.radians(20)), abs=1e-3)  # the 7.5 mm drift of 11 tilted steps is kept


def test_a_series_whose_spacing_changes_is_refused_with_the_reason(tmp_path):
    data = hu_volume(shape=(16, 16, 8))
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)).astype(np.int16))
    z = [0.0, 2.5, 5.0, 7.5, 12.5, 17.5, 22.5, 27.5]  # 2.5 mm, then 5 mm
    write_dicom_series(
        image, tmp_path / "uneven", "1.2.826.0.1.3680043.2.1125.21", positions=[(0.0, 0.0, v) for v in z]
    )
    with pytest.raises(
        Ct2mriError, match=r"slice spacing changes within the series \(2.50 to 5.00 mm, changing after slice 4 of 8\)"
    ):
        read_volume(tmp_path / "uneven")


def test_a_sheared_grid_is_written_with_its_sform_only(tmp_path):
    data = hu_volume(shape=(12, 10, 6))
    image = _tilted_image(data, 15.0)
    write_dicom_series(image, tmp_path / "tilted", "1.2.826.0.1.3680043.2.1125.22")
    volume = read_volume(tmp_path / "tilted")
    write_nifti(np.asarray(volume.data), tmp_path / "out.nii.gz", volume)
    img = nib.load(str(tmp_path / "out.nii.gz"))
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.affine, volume.affine, atol=1e-4)
    assert read_volume(tmp_path / "out.nii.gz").affine is not None
