"""CT brain extraction: a phantom with known anatomy, the real head CT, and the HU checks."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.preprocessing.brainmask import (
    BrainMaskParams,
    _fill_convex,
    check_hu,
    extract_brain_ct,
)


def components(mask: np.ndarray) -> int:
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    return int(sitk.GetArrayFromImage(labels).max())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_phantom_brain_is_found_without_neck_skull_or_holder(head_phantom):
    mask = extract_brain_ct(head_phantom.hu, head_phantom.spacing)
    assert mask.dtype == bool and mask.shape == head_phantom.hu.shape
    assert dice(mask, head_phantom.intracranial) > 0.95
    assert not (mask & head_phantom.neck).any()
    assert head_phantom.hu[mask].max() < 200  # no skull, no holder
    assert components(mask) == 1
    # the cord enters through the foramen but is cut within a short distance of the brain
    z_mm = np.argwhere(mask)[:, 2] * head_phantom.spacing[2]
    z_brain = np.argwhere(head_phantom.intracranial)[:, 2] * head_phantom.spacing[2]
    assert z_mm.min() >= z_brain.min() - 12.0


def test_ventricles_and_calcifications_stay_inside(phantom_factory):
    phantom = phantom_factory()
    hu = phantom.hu.copy()
    centre = tuple(n // 2 for n in hu.shape)
    hu[centre[0] - 1 : centre[0] + 2, centre[1] - 1 : centre[1] + 2, centre[2] - 1 : centre[2] + 2] = 400.0
    mask = extract_brain_ct(hu, phantom.spacing)
    assert mask[centre]  # a calcification is a hole, filled
    assert mask[phantom.brain & (phantom.hu < 15) & phantom.intracranial].mean() > 0.95


def test_volume_input_follows_the_affine(phantom_factory):
    """The same head stored LPS with swapped axes gives the same mask on its own grid; thicker
    slices than pixels, so the voxel spacing must follow the axes too."""
    head_phantom = phantom_factory(spacing=(1.0, 1.0, 5.0))
    ras = Volume(head_phantom.hu, head_phantom.affine)
    stored = np.ascontiguousarray(head_phantom.hu[::-1, ::-1, :].transpose(2, 0, 1))  # (S, L, P) order
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    sx, sy, sz = head_phantom.spacing
    shape = head_phantom.hu.shape
    affine[0, 1], affine[1, 2], affine[2, 0] = -sx, -sy, sz
    affine[:3, 3] = head_phantom.affine[:3, :3] @ [shape[0] - 1, shape[1] - 1, 0] + head_phantom.affine[:3, 3]
    other = Volume(stored, affine)
    np.testing.assert_allclose(other.affine @ [3, 5, 7, 1], ras.affine @ [shape[0] - 1 - 5, shape[1] - 1 - 7, 3, 1])
    mask_ras = extract_brain_ct(ras)
    mask_other = extract_brain_ct(other)
    np.testing.assert_array_equal(mask_other, mask_ras[::-1, ::-1, :].transpose(2, 0, 1))


def test_opening_cuts_a_thin_leak_into_a_walled_off_compartment(phantom_factory):
    """An 'orbit' inside the skull's hull, walled off by 6 mm of bone except a 4 mm channel."""
    phantom = phantom_factory()
    hu = phantom.hu.copy()
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in hu.shape], indexing="ij"), axis=-1)
    world = idx @ phantom.affine[:3, :3].T + phantom.affine[:3, 3]
    rel = world - np.array([0.0, 45.0, -35.0])
    radius = np.linalg.norm(rel, axis=-1)
    globe = radius <= 9.0
    wall = (radius > 9.0) & (radius <= 15.0)
    channel = wall & (rel[..., 0] ** 2 + rel[..., 2] ** 2 <= 2.0**2) & (rel[..., 1] < 0)
    hu[wall & ~channel] = 1100.0
    hu[globe | channel] = 40.0
    no_opening = extract_brain_ct(hu, phantom.spacing, BrainMaskParams(opening_mm=0.0, smoothing_mm=0.0))
    with_opening = extract_brain_ct(hu, phantom.spacing)
    assert no_opening[globe].mean() > 0.9
    assert not with_opening[globe].any()
    assert dice(with_opening, phantom.intracranial & ~(radius <= 15.0)) > 0.95


def _doubled_area(a, b, c) -> np.ndarray:
    """|twice the signed area| of triangles abc; a, b, c broadcast as (..., 2) integer arrays."""
    return np.abs((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


def test_convex_hull_fill_of_a_hand_drawn_triangle():
    """Three corner pixels fill the right triangle r, c >= 0, r + c <= 10: 66 pixels, edges included."""
    plane = np.zeros((20, 20), bool)
    plane[2, 3] = plane[2, 13] = plane[12, 3] = True
    rr, cc = np.indices(plane.shape)
    expected = (rr >= 2) & (cc >= 3) & ((rr - 2) + (cc - 3) <= 10)
    assert expected.sum() == 66
    np.testing.assert_array_equal(_fill_convex(plane), expected)


def test_convex_hull_fill_matches_caratheodory_on_random_points():
    """A pixel is in the hull of the points iff it lies in (or on) some triangle of three of them."""
    rng = np.random.default_rng(5)
    plane = np.zeros((40, 50), bool)
    pts = rng.integers(5, 35, size=(12, 2))
    plane[pts[:, 0], pts[:, 1]] = True
    pix = np.stack(np.indices(plane.shape), axis=-1).reshape(-1, 1, 2)
    i, j, k = np.array(list(itertools.combinations(range(len(pts)), 3))).T
    a, b, c = pts[i][None], pts[j][None], pts[k][None]
    whole = _doubled_area(a, b, c)
    parts = _doubled_area(pix, a, b) + _doubled_area(pix, b, c) + _doubled_area(pix, c, a)
    inside = ((parts == whole) & (whole > 0)).any(axis=1).reshape(plane.shape)
    assert inside.sum() > 100
    np.testing.assert_array_equal(_fill_convex(plane), inside)


def test_mri_given_as_ct_is_refused(head_phantom):
    t1_like = np.clip(head_phantom.hu + 1000.0, 0, None) / 10.0
    with pytest.raises(Ct2mriError, match="not Hounsfield units"):
        extract_brain_ct(Volume(t1_like, head_phantom.affine, description="t1.nii.gz"))
    with pytest.raises(Ct2mriError, match="rescale intercept"):
        check_hu(head_phantom.hu + 1024.0 + 1000.0)


def test_unusual_intensities_warn(head_phantom):
    assert check_hu(head_phantom.hu) is None
    cropped = np.clip(head_phantom.hu, -200, 200)  # no air, no bone
    message = check_hu(cropped, "odd.nii")
    assert message is not None and message.startswith("odd.nii") and "air" in message and "bone" in message
    with pytest.warns(UserWarning, match="do not look like a head CT"):
        try:
            extract_brain_ct(cropped, head_phantom.spacing)
        except Ct2mriError:
            pass


@pytest.mark.realdata
def test_real_head_ct_brain_volume_hu_and_connectivity(head_ct, head_ct_mask):
    mask = head_ct_mask
    voxel_ml = float(np.prod(head_ct.spacing)) / 1000.0
    volume_ml = mask.sum() * voxel_ml
    assert 1000.0 <= volume_ml <= 1700.0
    inside = head_ct.data[mask]
    assert np.percentile(inside, 99) < 300.0  # no bone; the rim blurred with the inner table is in
    assert np.percentile(inside, 90) < 60.0
    assert 15.0 < np.median(inside) < 40.0
    assert components(mask) == 1
    from ct2mri_cli.preprocessing.checks import check_mask_in_skull

    assert check_mask_in_skull(mask, head_ct.data, head_ct.spacing, "head").value < 0.005  # no face, no neck
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_hu(head_ct.data, str(head_ct.path)) is None


def test_a_skull_stripped_ct_is_pointed_to_mask(head_phantom):
    stripped = np.where(head_phantom.intracranial, head_phantom.hu, -1000.0).astype(np.float32)
    with pytest.raises(Ct2mriError, match="skull-stripped CT .* give its brain with --mask"):
        extract_brain_ct(stripped, head_phantom.spacing)
