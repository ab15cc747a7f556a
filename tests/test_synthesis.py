"""The synthetic-pair generator: pieces on small volumes, then the real brains against the real CT."""

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from ct2mri_cli.data import synthesis as S
from ct2mri_cli.data.sources import source_missing
from ct2mri_cli.data.synthesis.anatomy import _quantise_brain
from ct2mri_cli.data.synthesis.deformation import _coarse_grid, _grid_points
from ct2mri_cli.data.synthesis.imaging import _morph
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.io.images import array_from_sitk, sitk_from_array
from ct2mri_cli.io.volumes import Volume

SPACING = 2.0


def _grid(shape=(44, 48, 44), spacing=SPACING):
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * spacing
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    return affine, idx @ affine[:3, :3].T + affine[:3, 3]


def toy_anatomy():
    """A round head: WM core, GM shell, CSF ventricle and rim, skull with diploe, scalp, fat, air."""
    affine, world = _grid()
    r = np.linalg.norm(world / np.array([1.0, 1.15, 1.0]), axis=-1)
    icv = r <= 30.0
    wm = np.clip((24.0 - r) / 2.0 + 0.5, 0, 1)
    gm = np.clip((28.0 - r) / 2.0 + 0.5, 0, 1) - wm
    ventricle = np.linalg.norm((world - [0, 0, 4]) / np.array([6.0, 12.0, 6.0]), axis=-1) <= 1.0
    wm[ventricle] = 0.0
    gm[ventricle] = 0.0
    csf = np.clip(1.0 - gm - wm, 0, 1)
    labels = np.full(r.shape, S.CLASSES.index("air"), dtype=np.uint8)
    labels[(r > 30) & (r <= 38)] = S.CLASSES.index("cortical")
    labels[(r > 32) & (r <= 36)] = S.CLASSES.index("diploe")
    labels[(r > 38) & (r <= 42)] = S.CLASSES.index("soft")
    labels[(r > 42) & (r <= 44)] = S.CLASSES.index("fat")
    t1 = np.zeros(r.shape, np.float32)
    t1_of = {"cortical": 0.2, "diploe": 0.5, "soft": 0.6, "fat": 1.8}
    for name, value in t1_of.items():
        t1[labels == S.CLASSES.index(name)] = value
    t1 = np.where(icv, 0.35 * csf + 0.78 * gm + 1.0 * wm, t1).astype(np.float32)
    brain = np.stack([csf, gm, wm]).astype(np.float32)
    return S.make_anatomy("toy", affine, brain, labels, icv, t1, {"csf": 0.35, "gm": 0.78, "wm": 1.0}, None)


@pytest.fixture(scope="module")
def toy():
    return toy_anatomy()


def quiet_params(**changes):
    """Identity geometry and no noise, blur or contrast change: the pair must equal the anatomy."""
    params = S.SubjectParams(
        source="toy",
        rotation_deg=(0.0, 0.0, 0.0),
        scale=(1.0, 1.0, 1.0),
        shift_mm=(0.0, 0.0, 0.0),
        warp_rms_mm=0.0,
        warp_fwhm_mm=30.0,
        ventricle_mm=0.0,
        hu={
            "csf": 8.0,
            "gm": 38.0,
            "wm": 26.0,
            "cortical": 1400.0,
            "diploe": 650.0,
            "fat": -90.0,
            "soft": 40.0,
            "air": -1000.0,
        },
        ct_inhomogeneity_hu=0.0,
        bone_density_sd=0.0,
        bone_texture_sd=0.0,
        ct_blur_fwhm_mm=(0.0, 0.0),
        ct_noise_fwhm_mm=(1.0, 1.0),
        ct_noise_sd=0.0,
        mri_gamma=1.0,
        mri_saturation=0.0,
        mri_bias_sd=0.0,
        mri_noise=0.0,
        mri_scale=1000.0,
    )
    return dataclasses.replace(params, **changes)


def dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


# ------------------------------------------------------------------------------------------
# tissue memberships


def test_gmm_recovers_three_classes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(30, 5, 20000), rng.normal(80, 6, 50000), rng.normal(115, 4, 40000)])
    means, sds, weights = S.fit_gmm_1d(values)
    np.testing.assert_allclose(means, [30, 80, 115], atol=1.5)
    np.testing.assert_allclose(sds, [5, 6, 4], atol=1.0)
    np.testing.assert_allclose(weights, np.array([2, 5, 4]) / 11, atol=0.02)


def test_gmm_needs_enough_values():
    with pytest.raises(ValueError, match="too few values"):
        S.fit_gmm_1d(np.arange(5.0))


def test_partial_volume_memberships_mix_adjacent_classes():
    t1 = np.array([0.1, 0.3, 0.5, 0.7, 0.85, 1.0, 1.3], dtype=np.float32)
    fr = S.partial_volume_memberships(t1, (0.3, 0.7, 1.0))
    np.testing.assert_allclose(fr.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(fr[:, 0], [1, 0, 0])  # below CSF: CSF
    np.testing.assert_allclose(fr[:, 2], [0.5, 0.5, 0])  # halfway CSF-GM
    np.testing.assert_allclose(fr[:, 4], [0, 0.5, 0.5], atol=1e-6)  # halfway GM-WM
    np.testing.assert_allclose(fr[:, 6], [0, 0, 1])  # above WM: WM
    with pytest.raises(ValueError, match="must increase"):
        S.partial_volume_memberships(t1, (0.7, 0.3, 1.0))


def test_quantised_brain_fractions_sum_to_255():
    rng = np.random.default_rng(0)
    raw = rng.random((3, 9, 9, 9)).astype(np.float32)
    raw /= raw.sum(axis=0, keepdims=True)
    icv = rng.random((9, 9, 9)) > 0.3
    q = _quantise_brain(raw, icv)
    total = q.astype(int).sum(axis=0)
    assert (total[icv] == 255).all() and (total[~icv] == 0).all()
    np.testing.assert_allclose(q[:, icv] / 255.0, raw[:, icv], atol=1.0 / 255)


def test_sharpening_keeps_gm_plus_wm_and_pushes_the_split_apart():
    gm = np.array([0.0, 0.3, 0.5, 0.45, 0.1, 0.4], dtype=np.float32)
    wm = np.array([0.0, 0.1, 0.5, 0.45, 0.8, 0.0], dtype=np.float32)
    g2, w2 = S.sharpen_gm_wm(gm, wm)
    np.testing.assert_allclose(g2 + w2, gm + wm, atol=1e-6)
    r_old = np.divide(wm, gm + wm, out=np.zeros_like(wm), where=gm + wm > 0)
    r_new = np.divide(w2, g2 + w2, out=np.zeros_like(wm), where=gm + wm > 0)
    np.testing.assert_allclose(r_new[[2, 3, 5]], r_old[[2, 3, 5]], atol=1e-6)  # fixed points 1/2 and 0
    assert r_new[1] < r_old[1] and r_new[4] > r_old[4]


def _ideal_hu_by_hand(anatomy, hu):
    """Inside the ICV the 1/255 CSF/GM/WM fractions weight their HU; outside, each label's HU."""
    csf, gm, wm = anatomy.brain_fractions.astype(np.float64) / 255.0
    brain = csf * hu["csf"] + gm * hu["gm"] + wm * hu["wm"]
    outside = np.zeros(anatomy.shape)
    for name in ("cortical", "diploe", "fat", "soft", "air"):
        outside[anatomy.labels == S.CLASSES.index(name)] = hu[name]
    return np.where(anatomy.icv, brain, outside)


def test_anatomy_fractions_and_ideal_hu(toy):
    """Fractions sum to 1 and split brain mixture / hard labels; ideal HU is their weighted sum."""
    fr = toy.fractions()
    np.testing.assert_allclose(fr.sum(axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(fr[:3], toy.brain_fractions / 255.0, atol=1e-7)
    for k, name in enumerate(S.CLASSES[3:], start=3):
        np.testing.assert_array_equal(fr[k], (toy.labels == k) & ~toy.icv, err_msg=name)
    hu = {name: float(10 * i + 3) for i, name in enumerate(S.CLASSES)}  # csf 3, gm 13, ..., air 73
    expected = _ideal_hu_by_hand(toy, hu)
    assert np.unique(np.round(expected[~toy.icv])).tolist() == [33.0, 43.0, 53.0, 63.0, 73.0]
    np.testing.assert_allclose(toy.hu_ideal(hu), expected, atol=1e-3)


# ------------------------------------------------------------------------------------------
# filters and fields


def test_gaussian_blur_has_the_requested_fwhm_per_axis():
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    impulse = np.zeros((41, 41, 31), np.float32)
    impulse[20, 20, 15] = 1.0
    out = S.gaussian_blur(impulse, affine, (2.0, 3.0, 4.0))
    assert out.sum() == pytest.approx(1.0, rel=1e-3)
    coords = [np.arange(n) - c for n, c in zip(out.shape, (20, 20, 15))]
    for axis, (fwhm, step) in enumerate(zip((2.0, 3.0, 4.0), (0.5, 0.5, 1.0))):
        profile = out.sum(axis=tuple(a for a in range(3) if a != axis))
        sigma_mm = math.sqrt((profile * coords[axis] ** 2).sum() / profile.sum()) * step
        assert sigma_mm == pytest.approx(fwhm / 2.3548, rel=0.03)


def test_correlated_noise_has_the_sd_and_correlation_asked_for():
    affine = np.eye(4)
    shape = (48, 48, 48)
    sharp = S.correlated_noise(np.random.default_rng(0), shape, affine, 6.0, (0.5, 0.5))
    smooth = S.correlated_noise(np.random.default_rng(0), shape, affine, 6.0, (2.5, 2.5))
    assert sharp.std() == pytest.approx(6.0, rel=1e-4) and smooth.std() == pytest.approx(6.0, rel=1e-4)

    def lag1(x):
        return float(np.corrcoef(x[1:].ravel(), x[:-1].ravel())[0, 1])

    # filtered white noise correlates neighbours like the kernel does with its own shifted copy
    impulse = np.zeros((21, 21, 21), np.float32)
    impulse[10, 10, 10] = 1.0
    kernel = S.gaussian_blur(impulse, affine, (2.5, 2.5, 2.5))
    expected = float((kernel[1:] * kernel[:-1]).sum() / (kernel**2).sum())
    assert 0.6 < expected < 0.85
    assert lag1(smooth) == pytest.approx(expected, abs=0.02)
    assert lag1(sharp) < 0.1
    again = S.correlated_noise(np.random.default_rng(0), shape, affine, 6.0, (2.5, 2.5))
    np.testing.assert_array_equal(again, smooth)


def test_upsampling_reproduces_a_linear_field_exactly():
    affine = np.diag([-1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [30.0, -20.0, -10.0]
    shape = (30, 25, 12)
    cshape, caffine = _coarse_grid(shape, affine)
    coarse_world = _grid_points(cshape, caffine)
    a = np.array([0.3, -0.2, 0.5])
    field = (coarse_world @ a + 7.0).astype(np.float32)
    fine = S.upsample_coarse(field, caffine, shape, affine)
    expected = _grid_points(shape, affine) @ a + 7.0
    np.testing.assert_allclose(fine, expected, atol=1e-4)


def test_trilinear_sampling_of_a_linear_function_and_outside():
    affine, world = _grid((6, 7, 8), 2.0)
    values = (world @ np.array([1.0, 2.0, -0.5])).astype(np.float32)
    pts = np.array([[0.3, -1.7, 2.2], [1.0, 1.0, 1.0], [500.0, 0.0, 0.0]])
    got = S.trilinear(values, affine, pts, fill=-9.0)
    np.testing.assert_allclose(got[:2], pts[:2] @ np.array([1.0, 2.0, -0.5]), atol=1e-4)
    assert got[2] == pytest.approx(-9.0)


def test_output_grid_covers_the_source_field_of_view(toy):
    shape, affine = S.output_grid(toy, None)
    assert shape == toy.shape and np.array_equal(affine, toy.affine)
    shape, affine = S.output_grid(toy, 3.0)
    np.testing.assert_allclose(np.diag(affine)[:3], 3.0)
    src_lo = toy.affine[:3, 3]
    src_hi = src_lo + (np.asarray(toy.shape) - 1) * SPACING
    lo, hi = affine[:3, 3], affine[:3, 3] + (np.asarray(shape) - 1) * 3.0
    assert np.all(lo >= src_lo - 1e-9) and np.all(hi <= src_hi + 1e-9)
    assert np.all((src_hi - src_lo) - (hi - lo) < 3.0)
    np.testing.assert_allclose((lo + hi) / 2, (src_lo + src_hi) / 2)


def test_pullback_of_identity_shift_and_scale(toy):
    shape, affine = toy.shape, toy.affine
    pts, caffine = S.pullback_field(toy, quiet_params(), np.random.default_rng(0), shape, affine)
    nodes = _grid_points(pts.shape[:3], caffine)
    np.testing.assert_allclose(pts, nodes, atol=1e-9)
    pts, _ = S.pullback_field(toy, quiet_params(shift_mm=(3.0, -2.0, 1.0)), np.random.default_rng(0), shape, affine)
    np.testing.assert_allclose(pts, nodes - [3.0, -2.0, 1.0], atol=1e-9)
    pts, _ = S.pullback_field(toy, quiet_params(scale=(2.0, 2.0, 2.0)), np.random.default_rng(0), shape, affine)
    np.testing.assert_allclose(pts, toy.centre_mm + (nodes - toy.centre_mm) / 2.0, atol=1e-9)


def test_random_warp_has_the_requested_size(toy):
    params = quiet_params(warp_rms_mm=2.5, warp_fwhm_mm=20.0)
    pts, caffine = S.pullback_field(toy, params, np.random.default_rng(3), toy.shape, toy.affine)
    disp = pts - _grid_points(pts.shape[:3], caffine)
    rms = math.sqrt(float((disp**2).sum(axis=-1).mean()))
    assert rms == pytest.approx(2.5, rel=0.01)


def test_fine_warp_adds_a_finer_displacement_of_its_size_and_leaves_the_rest(toy):
    coarse = quiet_params(warp_rms_mm=2.5, warp_fwhm_mm=30.0)
    fine = dataclasses.replace(coarse, fine_warp_rms_mm=1.2, fine_warp_fwhm_mm=12.0)
    plain_pts, caffine = S.pullback_field(toy, coarse, np.random.default_rng(3), toy.shape, toy.affine)
    fine_pts, _ = S.pullback_field(toy, fine, np.random.default_rng(3), toy.shape, toy.affine, np.random.default_rng(9))
    added = fine_pts - plain_pts  # the subject's own warp is drawn as before
    assert math.sqrt(float((added**2).sum(axis=-1).mean())) == pytest.approx(1.2, rel=0.01)
    nodes_disp = plain_pts - _grid_points(plain_pts.shape[:3], caffine)

    def neighbour_correlation(field):  # of one component, between nodes 4 mm apart along x
        a, b = field[:-1, :, :, 0].ravel(), field[1:, :, :, 0].ravel()
        return float(np.corrcoef(a, b)[0, 1])

    assert neighbour_correlation(added) < neighbour_correlation(nodes_disp) - 0.1
    with pytest.raises(ValueError, match="fine_rng"):
        S.pullback_field(toy, fine, np.random.default_rng(3), toy.shape, toy.affine)


def test_with_fine_warp_draws_within_its_ranges_from_its_own_stream():
    params = quiet_params()
    drawn = [S.with_fine_warp(params, np.random.default_rng(seed), 1.2) for seed in range(20)]
    assert all(0.6 <= p.fine_warp_rms_mm <= 1.2 and 12.0 <= p.fine_warp_fwhm_mm <= 16.0 for p in drawn)
    assert len({p.fine_warp_rms_mm for p in drawn}) == 20
    assert dataclasses.replace(drawn[0], fine_warp_rms_mm=0.0, fine_warp_fwhm_mm=0.0) == params


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_strongest_fine_warp_does_not_fold_tissue(seed):
    """At the largest RMS and the smallest FWHM allowed, the deformation's Jacobian stays positive
    (on the 4 mm control grid whose nodes the warp is interpolated between)."""
    step = 4.0
    field = S.smooth_random_field(
        np.random.default_rng(seed), (40, 48, 40), np.diag([step, step, step, 1.0]), S.FINE_WARP_FWHM_MM[0], 3
    ) * (S.MAX_FINE_WARP_MM / math.sqrt(3.0))
    jacobian = np.empty((*field.shape[1:], 3, 3))
    for i in range(3):
        for j, derivative in enumerate(np.gradient(field[i], step)):
            jacobian[..., i, j] = derivative + (i == j)
    assert np.linalg.det(jacobian).min() > 0.0


# ------------------------------------------------------------------------------------------
# the pair


def test_quiet_pair_equals_the_anatomy(toy):
    params = quiet_params(mri_gamma=0.8, mri_saturation=0.5, mri_scale=900.0)
    pair = S.synthesize_pair(toy, params, np.random.default_rng(0))
    assert pair.ct.dtype == np.int16 and pair.t1.dtype == np.int16 and pair.mask.dtype == np.uint8
    expected_ct = _ideal_hu_by_hand(toy, params.hu)
    assert np.abs(pair.ct - expected_ct).max() <= 0.5 + 1e-3  # rounded to whole HU
    y = np.power(toy.t1, 0.8)
    y = y * 1.5 / (1 + 0.5 * y)
    np.testing.assert_array_equal(pair.t1, np.rint(y * 900.0).astype(np.int16))
    np.testing.assert_array_equal(pair.mask.astype(bool), toy.icv)
    np.testing.assert_array_equal(pair.affine, toy.affine)


def test_ct_noise_and_blur_are_applied(toy):
    params = quiet_params(ct_noise_sd=6.0, ct_noise_fwhm_mm=(0.5, 0.5))
    pair = S.synthesize_pair(toy, params, np.random.default_rng(0))
    diff = pair.ct.astype(np.float64) - _ideal_hu_by_hand(toy, params.hu)
    assert diff[toy.icv].std() == pytest.approx(6.0, rel=0.05)
    blurred = S.synthesize_pair(toy, quiet_params(ct_blur_fwhm_mm=(4.0, 6.0)), np.random.default_rng(0))
    sharp_edge = np.abs(np.diff(pair.ct.astype(float), axis=2)).max()
    soft_edge = np.abs(np.diff(blurred.ct.astype(float), axis=2)).max()
    assert soft_edge < 0.6 * sharp_edge


def test_a_warped_pair_stays_aligned(toy):
    """The skull cavity seen in the CT (below the CSF/bone midpoint, connected to the centre)
    must be the warped mask: both come from the same displacement field."""

    def ct_cavity(ct):
        labels = sitk.ConnectedComponent(sitk_from_array((ct < 704).astype(np.uint8), toy.affine))
        labels = array_from_sitk(labels)
        centre = tuple(n // 2 for n in ct.shape)
        return labels == labels[centre]

    params = quiet_params(
        rotation_deg=(4.0, -3.0, 5.0), scale=(0.93, 1.02, 0.97), shift_mm=(3.0, -2.0, 1.5), warp_rms_mm=3.0
    )
    pair = S.synthesize_pair(toy, params, np.random.default_rng(5))
    mask = pair.mask.astype(bool)
    assert dice(mask, toy.icv) < 0.95  # it moved
    cavity = ct_cavity(pair.ct)
    assert dice(cavity, mask) > 0.98
    assert dice(cavity, np.roll(mask, 2, axis=0)) < 0.95  # a 4 mm misalignment would show
    assert pair.t1[mask & (pair.ct > 20)].mean() > 600  # the T1 moved too: GM/WM where the CT has brain


def test_ventricle_pull_enlarges_the_ventricle(toy):
    assert np.linalg.norm(toy.ventricle_pull, axis=0).max() == pytest.approx(1.0, rel=1e-5)  # found the deep CSF
    plain = S.synthesize_pair(toy, quiet_params(), np.random.default_rng(0))
    bigger = S.synthesize_pair(toy, quiet_params(ventricle_mm=3.0), np.random.default_rng(0))
    near = np.linalg.norm(_grid_points(toy.shape, toy.affine) - [0.0, 0.0, 4.0], axis=-1) < 14.0
    csf = lambda p: ((p.ct < 15) & near).sum()
    assert csf(bigger) > 1.5 * csf(plain)
    np.testing.assert_array_equal(bigger.mask, plain.mask)  # the skull cavity is left alone


def test_same_seed_same_pair_different_seed_different_pair(toy):
    def make(seed):
        rng = np.random.default_rng(seed)
        return S.synthesize_pair(toy, S.sample_subject(rng, "toy"), rng)

    a, b, c = make(11), make(11), make(12)
    for name in ("ct", "t1", "mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.mask, c.mask) and not np.array_equal(a.ct, c.ct)


def test_sampled_subjects_are_reproducible_json_and_in_range():
    a = S.sample_subject(np.random.default_rng(4), "mni")
    b = S.sample_subject(np.random.default_rng(4), "mni")
    assert a == b
    record = json.loads(json.dumps(a.to_dict()))
    assert record["source"] == "mni" and set(record["hu"]) == set(S.CLASSES)
    for seed in range(30):
        p = S.sample_subject(np.random.default_rng(seed), "mni")
        assert p.hu["wm"] < p.hu["gm"] and p.hu["csf"] < p.hu["wm"]
        assert 1000 <= p.hu["cortical"] <= 1600 and 400 <= p.hu["diploe"] <= 800
        assert max(abs(v) for v in p.rotation_deg) <= 6.0 and 0.8 < min(p.scale) <= max(p.scale) < 1.0
        assert p.ct_blur_fwhm_mm[1] > p.ct_blur_fwhm_mm[0]  # thicker through-plane


def test_case_seeds_are_stable_and_distinct():
    seeds = [S.case_seed(7, i) for i in range(50)]
    assert len(set(seeds)) == 50 and seeds == [S.case_seed(7, i) for i in range(50)]
    assert S.case_seed(8, 0) != S.case_seed(7, 0)


def test_ct_statistics_on_a_known_volume():
    rng = np.random.default_rng(0)
    affine, world = _grid((50, 50, 50), 1.0)
    r = np.linalg.norm(world, axis=-1)
    brain = r <= 18.0
    hu = np.full(r.shape, -1000.0, np.float32)
    hu[brain] = 30.0 + rng.normal(0, 6.0, brain.sum())
    shell = (r > 18.0) & (r <= 22.0)
    bone_values = rng.uniform(400, 1600, shell.sum())
    hu[shell] = bone_values
    stats = S.ct_statistics(hu, affine, brain)
    assert stats["brain_median"] == pytest.approx(30.0, abs=0.3)
    assert stats["brain_iqr"] == pytest.approx(2 * 0.6745 * 6.0, rel=0.05)
    assert stats["noise_sd"] == pytest.approx(6.0, rel=0.06)  # white noise: the smoothing removes little
    np.testing.assert_allclose(
        [stats[f"bone_p{p}"] for p in (5, 50, 95)], np.percentile(bone_values, [5, 50, 95]), rtol=1e-6
    )


def test_unknown_source_is_an_error():
    with pytest.raises(Ct2mriError, match="unknown source brain 'nope'"):
        S.prepare_anatomy("nope")


# ------------------------------------------------------------------------------------------
# the real brains against the real head CT


def _anatomy_or_skip(source):
    """The prepared source brain; skips only when the source's files are absent."""
    reason = source_missing(source)
    if reason:
        pytest.skip(reason)
    return S.prepare_anatomy(source)


@pytest.fixture(scope="module")
def real_stats(head_ct, head_ct_mask):
    return S.ct_statistics(head_ct.data, head_ct.affine, head_ct_mask)


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["colin27", "mni"])
def test_real_anatomy_is_plausible(source):
    anatomy = _anatomy_or_skip(source)
    fr = anatomy.fractions()
    np.testing.assert_allclose(fr.sum(axis=0), 1.0, atol=1e-5)
    ml = {name: float(fr[i].sum()) / 1000.0 for i, name in enumerate(S.CLASSES)}
    assert 1700 < anatomy.icv.sum() / 1000.0 < 2200  # MNI space, before the subject's scaling
    assert 700 < ml["gm"] < 1100 and 500 < ml["wm"] < 800 and 150 < ml["csf"] < 500
    assert 250 < ml["cortical"] + ml["diploe"] < 700 and ml["fat"] > 50 and ml["soft"] > 500
    # the skull hugs the brain: nearly every voxel 2 mm outside the intracranial volume is bone
    ring = _morph(anatomy.icv, anatomy.affine, "dilate", 2.0) & ~anatomy.icv
    bone = np.isin(anatomy.labels, [S.CLASSES.index("cortical"), S.CLASSES.index("diploe")])
    upper = np.zeros_like(ring)
    upper[:, :, anatomy.shape[2] // 2 :] = True  # above the skull base
    assert bone[ring & upper].mean() > 0.9
    if source == "mni":
        assert anatomy.licence is not None and "McGill University" in anatomy.licence


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["colin27", "mni"])
def test_generated_ct_numbers_match_the_real_ct(source, real_stats):
    """Brain HU median and IQR, noise SD and bone percentiles within 20 % of the real CT's,
    measured the same way (extract_brain_ct on both).  1.5 mm: the real CT's slice spacing."""
    from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

    _anatomy_or_skip(source)
    pair = S.generate_pair(source, S.case_seed(2024, 0), 1.5)
    mask = extract_brain_ct(Volume(pair.ct.astype(np.float32), pair.affine))
    stats = S.ct_statistics(pair.ct, pair.affine, mask)
    off = {k: (stats[k] - real_stats[k]) / abs(real_stats[k]) for k in real_stats}
    assert all(abs(v) <= 0.20 for v in off.values()), {k: round(v, 3) for k, v in off.items()}


@pytest.mark.realdata
@pytest.mark.parametrize("source", ["colin27", "mni"])
def test_ct_brain_extraction_matches_the_t1_mask(source):
    from ct2mri_cli.preprocessing.brainmask import extract_brain_ct

    _anatomy_or_skip(source)
    pair = S.generate_pair(source, S.case_seed(99, 1), 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the synthetic CT must look like a head CT in HU
        mask = extract_brain_ct(Volume(pair.ct.astype(np.float32), pair.affine))
    assert dice(mask, pair.mask) > 0.9


@pytest.mark.realdata
def test_real_pairs_are_deterministic_and_seeds_differ():
    _anatomy_or_skip("mni")
    a = S.generate_pair("mni", 5, 3.0)
    b = S.generate_pair("mni", 5, 3.0)
    c = S.generate_pair("mni", 6, 3.0)
    for name in ("ct", "t1", "mask"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert dice(a.mask, c.mask) < 0.98  # different anatomy, not just different noise
    assert a.params.to_dict() != c.params.to_dict()


@pytest.mark.realdata
def test_t1_histograms_differ_between_subjects():
    """Contrast and bias vary, so style keys (histograms of the normalised T1) differ."""
    from ct2mri_cli.preprocessing.intensity import normalize_mri
    from ct2mri_cli.style.key import style_key

    _anatomy_or_skip("colin27")
    keys = []
    for seed in (1, 2):
        pair = S.generate_pair("colin27", seed, 3.0)
        mask = pair.mask.astype(bool)
        keys.append(style_key(normalize_mri(pair.t1.astype(np.float32), mask), mask))
    assert float((keys[0][0] - keys[1][0]).abs().sum()) > 0.5


def test_a_turn_composes_with_the_subjects_own_rotation():
    """The angles of a turned subject describe the turn applied after its own rotation."""
    from ct2mri_cli.data.synthesis.deformation import _rotation, turned_rotation

    own = (4.0, -3.0, 5.0)
    c, s = math.cos(math.radians(18.0)), math.sin(math.radians(18.0))
    pitch = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    angles = turned_rotation(own, pitch)
    np.testing.assert_allclose(_rotation(angles), pitch @ _rotation(own), atol=1e-12)
    np.testing.assert_allclose(turned_rotation(own, np.eye(3)), own, atol=1e-12)
    # a pure pitch of an upright subject is a pitch angle alone
    np.testing.assert_allclose(turned_rotation((0.0, 0.0, 0.0), pitch), (18.0, 0.0, 0.0), atol=1e-12)
