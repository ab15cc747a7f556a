"""The array <-> SimpleITK bridge: geometry, axis order, resampling and the exact voxel reordering."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.io.images import (
    RAS_ORDER,
    affine_from_sitk,
    array_from_sitk,
    canonical_order,
    resample_onto_grid,
    sitk_from_array,
    sitk_from_voxels,
    smoothed_to_spacing,
    storage_order,
    voxel_order,
)
from ct2mri_cli.io.volumes import Volume


def oblique_affine() -> np.ndarray:
    angle = np.radians(20.0)
    turn = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(angle), -np.sin(angle)], [0.0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = turn @ np.diag([-0.8, 1.1, 2.5])
    affine[:3, 3] = [30.0, -12.0, 7.0]
    return affine


def test_affine_from_sitk_follows_lps_to_ras():
    image = sitk.Image(4, 5, 6, sitk.sitkInt16)
    image.SetSpacing((0.5, 0.7, 2.0))
    image.SetOrigin((10.0, 20.0, 30.0))
    affine = affine_from_sitk(image)
    # index (1, 0, 0) is 0.5 mm along +L (LPS x), i.e. -0.5 mm in RAS x
    np.testing.assert_allclose(affine @ [1, 0, 0, 1], [-10.5, -20.0, 30.0, 1.0])
    np.testing.assert_allclose(affine @ [0, 0, 2, 1], [-10.0, -20.0, 34.0, 1.0])


def test_a_placed_array_keeps_its_voxels_and_its_affine():
    data = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    image = sitk_from_array(data, oblique_affine())
    assert image.GetSize() == (6, 7, 8) and image.GetPixel(1, 2, 3) == data[1, 2, 3]
    np.testing.assert_array_equal(array_from_sitk(image), data)
    np.testing.assert_allclose(affine_from_sitk(image), oblique_affine(), atol=1e-12)
    field = np.random.default_rng(1).normal(size=(6, 7, 8, 3))
    vectors = sitk_from_array(field, oblique_affine())
    assert vectors.GetNumberOfComponentsPerPixel() == 3 and vectors.GetPixel(1, 2, 3) == tuple(field[1, 2, 3])
    np.testing.assert_array_equal(array_from_sitk(vectors), field)


def test_voxel_images_index_like_the_array():
    plane = np.arange(12, dtype=np.int16).reshape(3, 4)
    image = sitk_from_voxels(plane, (0.5, 2.0))
    assert image.GetSize() == (3, 4) and image.GetSpacing() == (0.5, 2.0) and image.GetPixel(2, 1) == plane[2, 1]
    np.testing.assert_array_equal(array_from_sitk(image), plane)
    assert sitk_from_voxels(np.zeros((2, 3, 4), np.uint8)).GetSpacing() == (1.0, 1.0, 1.0)


def test_resample_onto_grid_identity_shift_and_nearest():
    rng = np.random.default_rng(0)
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = [20.0, -10.0, 5.0]
    data = rng.normal(size=(12, 10, 8)).astype(np.float32)
    image = sitk_from_array(data, affine)
    np.testing.assert_array_equal(resample_onto_grid(image, data.shape, affine), data)
    # a 1-voxel translation along +i (RAS -x = LPS +x) shifts the picture by one voxel
    moved = resample_onto_grid(image, data.shape, affine, sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), fill=-7.0)
    np.testing.assert_allclose(moved[:-1], data[1:], atol=1e-6)
    assert np.all(moved[-1] == -7.0)
    beyond = resample_onto_grid(
        image, data.shape, affine, sitk.TranslationTransform(3, (1.0, 0.0, 0.0)), extrapolate=True
    )
    np.testing.assert_array_equal(beyond[-1], data[-1])
    labels = sitk_from_array((data > 0).astype(np.uint8), affine)
    nearest = resample_onto_grid(labels, data.shape, affine, interpolation="nearest")
    assert nearest.dtype == np.uint8
    np.testing.assert_array_equal(nearest > 0, data > 0)
    with pytest.raises(ValueError, match="interpolation"):
        resample_onto_grid(image, data.shape, affine, interpolation="cubic")


def test_smoothed_to_spacing_keeps_the_field_origin_and_axes():
    image = sitk_from_array(np.ones((40, 30, 21), np.float32), oblique_affine())
    coarse = smoothed_to_spacing(image, 4.0, 2.0)
    assert coarse.GetSize() == (8, 8, 13) and coarse.GetSpacing() == (4.0, 4.0, 4.0)
    assert coarse.GetOrigin() == image.GetOrigin() and coarse.GetDirection() == image.GetDirection()
    assert coarse.GetPixelID() == sitk.sitkFloat32


@pytest.mark.parametrize(
    "to_stored",
    [
        np.array([[-1, 0, 0, 9], [0, 1, 0, 0], [0, 0, -1, 7], [0, 0, 0, 1]], float),  # x and z flipped
        np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float),  # axes permuted
    ],
)
def test_canonical_order_is_exact_and_undone(to_stored):
    ras = Volume(np.random.default_rng(2).normal(size=(10, 11, 8)).astype(np.float32), np.diag([1.0, 1.5, 2.0, 1.0]))
    stored_data = ras.data[::-1, :, ::-1] if to_stored[0, 0] < 0 else ras.data.transpose(1, 2, 0)
    stored = Volume(np.ascontiguousarray(stored_data), ras.affine @ to_stored)
    canon, order = canonical_order(stored)
    np.testing.assert_array_equal(voxel_order(canon.affine), RAS_ORDER)
    np.testing.assert_array_equal(canon.data, ras.data)
    np.testing.assert_allclose(canon.affine, ras.affine)
    np.testing.assert_array_equal(storage_order(canon.data, order), stored.data)
    assert canonical_order(ras) == (ras, None) and storage_order(ras.data, None) is ras.data
