"""The model grid and the way back: orientation, spacing, cropping, exactness and the record."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.volumes import Volume, read_volume, write_nifti
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.preprocessing.geometry import (
    GridRecord,
    apply_model_grid,
    from_model_grid,
    model_reference,
    model_to_xyz,
)
from tests.helpers import to_model_grid

SHAPE = (50, 60, 40)
CONFIG = PreprocessConfig(spacing_mm=1.0, in_plane=(56, 48), margin_mm=3.0)


def axis_affine(codes: str, spacing=(1.0, 1.0, 1.0), shape=SHAPE, offset=(7.0, -11.0, 4.0)) -> np.ndarray:
    """Voxel->RAS affine whose axes point along ``codes`` (e.g. 'LPS'), centred near ``offset``."""
    unit = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, code in enumerate(codes):
        row, sign = unit[code]
        affine[row, axis] = sign * spacing[axis]
    affine[:3, 3] = np.asarray(offset) - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return affine


def rotated_affine(spacing=(1.0, 1.0, 1.0), shape=SHAPE, deg=(20.0, -12.0, 8.0)) -> np.ndarray:
    ax, ay, az = np.deg2rad(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2) + [3.0, -2.0, 5.0]
    return affine


def world_of(affine: np.ndarray, shape) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    return (idx @ affine[:3, :3].T + affine[:3, 3]).reshape(*shape, 3)


def smooth_field(world: np.ndarray) -> np.ndarray:
    x, y, z = world[..., 0], world[..., 1], world[..., 2]
    return (100 + 30 * np.sin(x / 9.0) + 20 * np.cos(y / 11.0) + 10 * np.sin(z / 7.0 + 0.3)).astype(np.float32)


def ellipsoid_mask(world: np.ndarray, radii=(16.0, 20.0, 11.0), centre=(5.0, -3.0, 2.0)) -> np.ndarray:
    rel = (world - np.asarray(centre)) / np.asarray(radii)
    return (rel**2).sum(axis=-1) <= 1.0


def model_world(record: GridRecord) -> np.ndarray:
    """RAS coordinates of every model voxel, as a (Z, H, W, 3) array."""
    xyz = world_of(record.model_affine, record.model_shape_xyz)
    return xyz.transpose(2, 1, 0, 3)


@pytest.mark.parametrize("codes", ["LPS", "LAS", "RAS", "PIR", "SAL"])
def test_axis_permuted_volumes_round_trip_exactly(codes):
    affine = axis_affine(codes)
    world = world_of(affine, SHAPE)
    data = np.random.default_rng(3).normal(size=SHAPE).astype(np.float32)
    mask = ellipsoid_mask(world)
    vol = Volume(data, affine)
    model, record = to_model_grid(vol, mask, CONFIG)
    assert not record.resampled
    assert model.shape == record.model_shape and model.shape[1:] == CONFIG.in_plane
    assert model.dtype == np.float32
    # every model voxel holds the native voxel at the same world position (independent check)
    native_index = np.rint(
        (model_world(record).reshape(-1, 3) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    ).astype(int)
    inside = np.all((native_index >= 0) & (native_index < np.array(SHAPE)), axis=1)
    flat = model.reshape(-1)
    np.testing.assert_array_equal(flat[inside], data[tuple(native_index[inside].T)])
    assert np.all(flat[~inside] == 0.0)
    back = from_model_grid(model, record, fill=-5.0)
    assert back.shape == SHAPE
    covered = back != -5.0
    np.testing.assert_array_equal(back[covered], data[covered])
    assert covered[mask].all()
    np.testing.assert_array_equal(record.native_affine, affine)


def test_model_axes_follow_the_convention():
    """(Z, H, W) = (inferior->superior, posterior->anterior, left->right) whatever the input order."""
    affine = axis_affine("PIL")
    world = world_of(affine, SHAPE)
    mask = ellipsoid_mask(world)
    for axis, model_axis in ((0, 2), (1, 1), (2, 0)):
        model, _ = to_model_grid(Volume(world[..., axis].astype(np.float32) + 1000.0, affine), mask, CONFIG)
        steps = np.diff(model, axis=model_axis)
        data = model > 500  # not zero padding
        n = model.shape[model_axis]
        inside = np.take(data, range(n - 1), axis=model_axis) & np.take(data, range(1, n), axis=model_axis)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(steps[inside], 1.0)


def test_crop_is_the_brain_box_plus_margin_and_centred_in_plane():
    affine = axis_affine("LPS")
    world = world_of(affine, SHAPE)
    mask = ellipsoid_mask(world)
    model, record = to_model_grid(Volume(np.ones(SHAPE, np.float32), affine), mask, CONFIG)
    brain_world = world[mask]
    mw = model_world(record)
    z_world = mw[:, 0, 0, 2]
    assert z_world.min() == pytest.approx(brain_world[:, 2].min() - CONFIG.margin_mm, abs=1.0)
    assert z_world.max() == pytest.approx(brain_world[:, 2].max() + CONFIG.margin_mm, abs=1.0)
    model_mask = apply_model_grid(mask, record, order="nearest") > 0.5
    idx = np.argwhere(model_mask)
    centre_hw = (idx[:, 1:].min(axis=0) + idx[:, 1:].max(axis=0)) / 2
    np.testing.assert_allclose(centre_hw, (np.array(CONFIG.in_plane) - 1) / 2, atol=1.0)
    assert record.brain_fits
    assert model_mask.sum() == mask.sum()


@pytest.mark.parametrize(
    "name, affine_fn",
    [
        ("oblique", lambda: rotated_affine()),
        ("anisotropic", lambda: axis_affine("LPS", spacing=(0.8, 0.9, 2.5))),
        ("oblique-anisotropic", lambda: rotated_affine(spacing=(0.7, 0.7, 2.0))),
    ],
)
def test_resampled_volumes_round_trip_to_the_same_grid(tmp_path, name, affine_fn):
    affine = affine_fn()
    world = world_of(affine, SHAPE)
    data = smooth_field(world)
    mask = ellipsoid_mask(world)
    src = tmp_path / f"{name}.nii.gz"
    img = nib.Nifti1Image(data, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    nib.save(img, str(src))
    vol = read_volume(src)

    model, record = to_model_grid(vol, mask, CONFIG)
    assert record.resampled
    np.testing.assert_allclose(record.model_affine[:3, :3], np.eye(3) * CONFIG.spacing_mm)
    # model values are the field sampled at the model voxels' world positions
    model_mask = apply_model_grid(mask, record, order="nearest") > 0.5
    expected = smooth_field(model_world(record))
    cont = (model_world(record) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    within_fov = np.all((cont >= 0) & (cont <= np.array(SHAPE) - 1), axis=-1)
    interior = model_mask & within_fov
    assert interior.sum() > 0.9 * model_mask.sum()
    assert np.abs(model[interior] - expected[interior]).max() < 2.5

    back = from_model_grid(model, record)
    assert back.shape == SHAPE
    out = tmp_path / f"{name}_back.nii.gz"
    write_nifti(back, out, vol)
    reread = nib.load(str(out))
    assert reread.shape == SHAPE
    np.testing.assert_allclose(reread.affine, affine, atol=1e-5)
    assert int(reread.header["sform_code"]) == 2 and int(reread.header["qform_code"]) == 1
    err = np.abs(back[mask] - data[mask])
    assert err.mean() < 1.0 and err.max() < 5.0
    # native voxels more than one model voxel outside the model window get the fill value 0
    model_idx = (world - record.model_affine[:3, 3]) @ np.linalg.inv(record.model_affine[:3, :3]).T
    far = np.any((model_idx < -1.0) | (model_idx > np.array(record.model_shape_xyz)), axis=-1)
    assert far.sum() > 0.05 * far.size
    assert np.all(back[far] == 0.0)


def test_record_survives_json_and_gives_the_same_way_back():
    affine = rotated_affine(spacing=(0.9, 0.9, 1.8))
    world = world_of(affine, SHAPE)
    model, record = to_model_grid(Volume(smooth_field(world), affine), ellipsoid_mask(world), CONFIG)
    again = GridRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.to_dict() == record.to_dict()
    np.testing.assert_array_equal(from_model_grid(model, again), from_model_grid(model, record))
    with pytest.raises(Ct2mriError, match="malformed"):
        GridRecord.from_dict({"native_shape": [1, 2, 3]})


def test_model_reference_writes_model_arrays_with_the_model_affine(tmp_path):
    affine = axis_affine("LAS")
    world = world_of(affine, SHAPE)
    model, record = to_model_grid(Volume(smooth_field(world), affine), ellipsoid_mask(world), CONFIG)
    write_nifti(model_to_xyz(model), tmp_path / "m.nii.gz", model_reference(record))
    img = nib.load(str(tmp_path / "m.nii.gz"))
    np.testing.assert_allclose(img.affine, record.model_affine)
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(np.asanyarray(img.dataobj).transpose(2, 1, 0), model)


def test_brain_wider_than_the_model_is_flagged():
    affine = axis_affine("RAS")
    world = world_of(affine, SHAPE)
    mask = ellipsoid_mask(world, radii=(24.0, 28.0, 10.0))
    _, record = to_model_grid(Volume(np.ones(SHAPE, np.float32), affine), mask, PreprocessConfig(in_plane=(32, 32)))
    assert not record.brain_fits


def test_coarser_model_spacing_halves_the_grid():
    affine = axis_affine("RAS")
    world = world_of(affine, SHAPE)
    mask = ellipsoid_mask(world)
    config = PreprocessConfig(spacing_mm=2.0, in_plane=(32, 32), margin_mm=4.0)
    model, record = to_model_grid(Volume(smooth_field(world), affine), mask, config)
    assert record.resampled and model.shape[1:] == (32, 32)
    np.testing.assert_allclose(np.diag(record.model_affine)[:3], 2.0)


def test_bad_inputs():
    affine = axis_affine("RAS")
    vol = Volume(np.ones(SHAPE, np.float32), affine)
    with pytest.raises(Ct2mriError, match="mask is empty"):
        to_model_grid(vol, np.zeros(SHAPE, bool), CONFIG)
    with pytest.raises(Ct2mriError, match="differs"):
        to_model_grid(vol, np.ones((3, 3, 3), bool), CONFIG)
    _, record = to_model_grid(vol, ellipsoid_mask(world_of(affine, SHAPE)), CONFIG)
    with pytest.raises(Ct2mriError, match="model array shape"):
        from_model_grid(np.zeros((2, 2, 2)), record)


def test_the_way_back_smooths_only_along_axes_coarser_than_the_model():
    """Back onto 0.5 x 0.5 x 5 mm from a 2 mm model grid: in-plane the 2 mm steps are only
    interpolated; across the 5 mm slices each slice is the model's image smoothed to its
    thickness (Gaussian of sigma sqrt(5^2 - 2^2) mm FWHM), computed here independently."""
    from math import erf, log, sqrt

    shape = (80, 80, 12)
    affine = axis_affine("RAS", spacing=(0.5, 0.5, 5.0), shape=shape, offset=(0.0, 0.0, 0.0))
    world = world_of(affine, shape)
    mask = ellipsoid_mask(world, radii=(15.0, 15.0, 22.0), centre=(0.0, 0.0, 0.0))
    config = PreprocessConfig(spacing_mm=2.0, in_plane=(24, 24), margin_mm=2.0)
    _, record = to_model_grid(Volume(np.zeros(shape, np.float32), affine), mask, config)
    assert record.resampled
    centres = model_world(record)
    across = from_model_grid((centres[..., 2] > 0.0).astype(np.float32), record)[40, 40, :]
    in_plane = from_model_grid((centres[..., 0] > 0.0).astype(np.float32), record)[:, 40, 6]

    x = world[:, 40, 6, 0]
    far = np.abs(x) >= 2.0
    np.testing.assert_allclose(in_plane[far], (x[far] > 0).astype(np.float32), atol=1e-3)
    z_model = np.unique(centres[..., 2])
    edge = (z_model[z_model <= 0].max() + z_model[z_model > 0].min()) / 2.0
    sigma = sqrt(5.0**2 - 2.0**2) / (2.0 * sqrt(2.0 * log(2.0)))
    smoothed = np.array([0.5 * (1.0 + erf((z - edge) / (sigma * sqrt(2.0)))) for z in z_model])
    z = world[40, 40, :, 2]
    inside = np.abs(z) < 15.0
    np.testing.assert_allclose(across[inside], np.interp(z[inside], z_model, smoothed), atol=0.03)
