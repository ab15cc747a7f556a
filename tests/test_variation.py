"""The wide variety of subjects and scanners: every knob moves the statistic it claims to."""

import dataclasses

import numpy as np
import pytest

from ct2mri_cli.data import synthesis as S
from ct2mri_cli.data.synthesis import variation as V
from ct2mri_cli.data.synthesis.imaging import _morph
from ct2mri_cli.data.synthesis.subject import widen
from tests.test_synthesis import quiet_params, toy_anatomy


@pytest.fixture(scope="module")
def toy():
    return toy_anatomy()


def _flat(shape=(64, 64, 64), spacing=1.0, value=20.0):
    affine = np.diag([spacing, spacing, spacing, 1.0])
    return np.full(shape, value, np.float32), affine


def _fwhm(profile, spacing):
    """Full width at half maximum of a single-peaked profile (linear interpolation)."""
    profile = np.asarray(profile, float) - float(np.min(profile))
    half = profile.max() / 2.0
    above = np.nonzero(profile >= half)[0]
    lo, hi = above[0], above[-1]
    left = lo - 1 + (half - profile[lo - 1]) / (profile[lo] - profile[lo - 1])
    right = hi + (profile[hi] - half) / (profile[hi] - profile[hi + 1])
    return (right - left) * spacing


def _wide(seed=3, **changes):
    params = widen(quiet_params(), np.random.default_rng(seed))
    return dataclasses.replace(params, **changes)


@pytest.mark.parametrize("sd", [3.0, 12.0])
def test_noise_level_is_the_sd_asked_for(sd):
    hu, affine = _flat()
    params = quiet_params(ct_noise_sd=sd, ct_noise_fwhm_mm=(1.5, 2.0))
    ct = S.ct_from_hu(hu, affine, params, np.random.default_rng(0)).astype(np.float32)
    assert abs(float(ct[8:-8, 8:-8, 8:-8].std()) - sd) < 0.06 * sd + 0.3  # 0.3: the rounding to integer HU


def test_wide_noise_spans_three_to_twelve_hu_and_a_sharper_kernel_has_finer_grain():
    draws = [widen(quiet_params(), np.random.default_rng(s)) for s in range(200)]
    sds = [d.ct_noise_sd for d in draws]
    assert 3.0 <= min(sds) < 3.5 and 11.5 < max(sds) <= 12.0
    hu, affine = _flat()

    def lag1(sharpness):
        params = _wide(
            kernel_sharpness=sharpness,
            ct_noise_sd=8.0,
            ct_noise_fwhm_mm=(2.2 - 1.2 * sharpness, 1.0),
            ct_blur_fwhm_mm=(0.0, 0.0),
            cupping_hu=0.0,
        )
        noise = S.ct_from_hu(hu, affine, params, np.random.default_rng(1)).astype(np.float64) - 20.0
        return float(np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1])

    assert lag1(1.0) < lag1(0.0) - 0.2


@pytest.mark.parametrize("thickness", [1.0, 5.0])
def test_slice_thickness_sets_the_measured_slice_profile(thickness):
    shape, spacing = (6, 6, 200), 0.1
    hu = np.zeros(shape, np.float32)
    hu[:, :, shape[2] // 2] = 3000.0  # a plane much thinner than any slice, imaged
    affine = np.diag([spacing, spacing, spacing, 1.0])
    params = _wide(
        slice_thickness_mm=thickness,
        kernel_sharpness=0.0,
        ct_noise_sd=0.0,
        cupping_hu=0.0,
        bone_texture_sd=0.0,
        bone_density_sd=0.0,
    )
    params = dataclasses.replace(params, ct_blur_fwhm_mm=(params.ct_blur_fwhm_mm[0], thickness))
    ct = S.ct_from_hu(hu, affine, params, np.random.default_rng(0)).astype(np.float32)
    measured = _fwhm(ct[3, 3, :], spacing)
    assert measured == pytest.approx(thickness, rel=0.05)
    drawn = widen(quiet_params(), np.random.default_rng(11))
    assert drawn.ct_blur_fwhm_mm[1] == drawn.slice_thickness_mm  # what widen() draws, the CT gets


def test_wide_slice_thickness_covers_thin_to_thick_slices():
    thick = [widen(quiet_params(), np.random.default_rng(s)).slice_thickness_mm for s in range(300)]
    assert 0.6 <= min(thick) < 0.7 and 4.5 < max(thick) <= 5.0


def test_a_sharp_kernel_enhances_edges():
    hu = np.zeros((64, 64, 8), np.float32)
    hu[32:, :, :] = 100.0
    affine = np.eye(4)

    def overshoot(sharpness):
        params = _wide(
            kernel_sharpness=sharpness,
            ct_blur_fwhm_mm=(0.6 + 0.5 * (1.0 - sharpness), 0.0),
            ct_noise_sd=0.0,
            cupping_hu=0.0,
        )
        ct = S.ct_from_hu(hu, affine, params, np.random.default_rng(0)).astype(np.float32)
        return float(ct[:, 32, 4].max()) - 100.0

    assert overshoot(0.0) <= 0.5
    assert overshoot(1.0) > 5.0


@pytest.mark.parametrize("difference", [4.0, 13.0])
def test_grey_white_contrast_is_the_difference_drawn(toy, difference):
    hu = dict(quiet_params().hu)
    hu["gm"] = hu["wm"] + difference
    pair = S.synthesize_pair(toy, quiet_params(hu=hu), np.random.default_rng(0))
    fr = toy.fractions()
    gm = fr[S.CLASSES.index("gm")] > 0.99
    wm = fr[S.CLASSES.index("wm")] > 0.99
    measured = float(np.median(pair.ct[gm])) - float(np.median(pair.ct[wm]))
    assert abs(measured - difference) <= 1.0


def test_wide_grey_white_contrast_spans_the_clinical_range():
    diffs = [(lambda p: p.hu["gm"] - p.hu["wm"])(widen(quiet_params(), np.random.default_rng(s))) for s in range(200)]
    assert 4.0 <= min(diffs) < 5.0 and 12.0 < max(diffs) <= 13.0


def test_cupping_raises_the_brain_near_the_inner_table(toy):
    def rim_minus_core(cupping):
        pair = S.synthesize_pair(toy, quiet_params(cupping_hu=cupping), np.random.default_rng(0))
        depth = S.imaging._distance_mm(~pair.mask.astype(bool), pair.affine)
        wm = toy.fractions()[S.CLASSES.index("wm")] > 0.99
        return float(pair.ct[wm & (depth <= 8.0)].mean()), float(pair.ct[wm & (depth >= 20.0)].mean())

    rim0, core0 = rim_minus_core(0.0)
    rim, core = rim_minus_core(10.0)
    assert 0.0 <= core - core0 < 10.0 * np.exp(-20.0 / 8.0) + 0.3  # deep white matter: nearly unchanged
    assert 10.0 * np.exp(-1.0) - 1.0 < rim - rim0 < 10.0  # 6-8 mm deep: about 10 exp(-d / 8)


def test_calcified_pineal_gland_and_choroid_plexus(toy):
    anatomy = dataclasses.replace(toy, brain_fractions=toy.brain_fractions.copy())
    # a ventricle trigone near the left choroid site, so the plexus has somewhere to lie
    world = (
        np.stack(np.meshgrid(*[np.arange(n) for n in toy.shape], indexing="ij"), -1) @ toy.affine[:3, :3].T
        + toy.affine[:3, 3]
    )
    trigone = np.linalg.norm(world - np.array([-24.0, -36.0, 12.0]), axis=-1) <= 5.0
    anatomy.brain_fractions[:, trigone] = np.array([255, 0, 0], np.uint8)[:, None]
    sites = V.calcification_sites(anatomy, "choroid")
    assert len(sites) == 1 and np.linalg.norm(sites[0] - [-24.0, -36.0, 12.0]) <= 5.0  # the right site has no CSF
    params = quiet_params(calcifications={"choroid": 250.0, "pineal": 320.0})
    hu, t1 = V.subject_anatomy(anatomy, params)
    idx = np.round(np.linalg.inv(toy.affine) @ np.array([*V.PINEAL_MNI[0], 1.0]))[:3].astype(int)
    assert hu[tuple(idx)] == 320.0
    assert (hu == 250.0).sum() >= 4 and (hu == 320.0).sum() >= 1
    np.testing.assert_array_equal(t1, anatomy.t1)  # calcifications are a CT finding only
    plain, _ = V.subject_anatomy(anatomy, quiet_params())
    assert not (plain[anatomy.icv] > 100.0).any()


def test_atrophy_turns_grey_matter_next_to_csf_into_csf(toy):
    base_hu, base_t1 = V.subject_anatomy(toy, quiet_params())
    hu, t1 = V.subject_anatomy(toy, quiet_params(atrophy=0.8))
    p = quiet_params().hu
    threshold = 0.5 * (p["csf"] + p["gm"])
    assert (hu[toy.icv] < threshold).sum() > 1.2 * (base_hu[toy.icv] < threshold).sum()
    changed = np.abs(hu - base_hu) > 0.5
    assert changed.any()
    # the T1 loses grey matter where the CT does, in proportion
    ratio = (t1 - base_t1)[changed] / (hu - base_hu)[changed]
    expected = (toy.t1_levels["csf"] - toy.t1_levels["gm"]) / (p["csf"] - p["gm"])
    np.testing.assert_allclose(ratio, expected, rtol=1e-3)
    wm = toy.fractions()[S.CLASSES.index("wm")] > 0.99
    assert np.abs(hu - base_hu)[wm].max() < 1e-3  # white matter is not lost


def test_negative_ventricle_pull_shrinks_the_ventricles(toy):
    def ventricle_voxels(mm):
        pair = S.synthesize_pair(toy, quiet_params(ventricle_mm=mm), np.random.default_rng(0))
        deep = _morph(pair.mask.astype(bool), pair.affine, "erode", 12.0)
        return int((deep & (pair.ct < 15)).sum())

    assert ventricle_voxels(-1.5) < ventricle_voxels(0.0) < ventricle_voxels(2.0)


def test_asymmetry_widens_one_hemisphere(toy):
    def extents(a):
        pair = S.synthesize_pair(toy, quiet_params(asymmetry=a), np.random.default_rng(0))
        x = (np.argwhere(pair.mask)[:, 0] * pair.affine[0, 0]) + pair.affine[0, 3]
        return float(x.max()), float(-x.min())

    right0, left0 = extents(0.0)
    right, left = extents(0.04)
    assert right > right0 + 1.0 and left < left0 - 1.0


def test_partial_coverage_drops_slices_and_keeps_the_rest_in_place(toy):
    full = S.synthesize_pair(toy, quiet_params(), np.random.default_rng(0))
    cut = S.synthesize_pair(toy, quiet_params(coverage_cut_mm=(8.0, 4.0)), np.random.default_rng(0))
    spacing = full.affine[2, 2]
    bottom, top = int(8.0 / spacing), int(4.0 / spacing)
    assert cut.ct.shape == full.ct.shape[:2] + (full.ct.shape[2] - bottom - top,)
    np.testing.assert_array_equal(cut.ct, full.ct[:, :, bottom : full.ct.shape[2] - top])
    np.testing.assert_array_equal(cut.t1, full.t1[:, :, bottom : full.ct.shape[2] - top])
    # voxel (0, 0, 0) of the cut scan is voxel (0, 0, bottom) of the full one, in the world
    np.testing.assert_allclose(cut.affine @ [0, 0, 0, 1], full.affine @ [0, 0, bottom, 1])


def test_wide_pose_and_anatomy_ranges():
    draws = [widen(quiet_params(), np.random.default_rng(s)) for s in range(300)]
    pitch = np.array([d.rotation_deg[0] for d in draws])
    assert np.abs(pitch).max() <= 20.0 and np.abs(pitch).max() > 18.0
    assert min(d.ventricle_mm for d in draws) < -1.0 and max(d.ventricle_mm for d in draws) > 3.5
    assert 0.3 < np.mean([d.atrophy > 0 for d in draws]) < 0.9
    assert max(d.warp_rms_mm for d in draws) > 6.0
    assert 0.15 < np.mean([d.coverage_cut_mm != (0.0, 0.0) for d in draws]) < 0.45
    assert all(d.variety == "wide" for d in draws)


def test_same_seed_same_wide_pair_different_seed_different_pair(toy):
    def make(seed):
        rng = np.random.default_rng(seed)
        params = S.sample_subject(rng, "toy", variety="wide")
        return params, S.synthesize_pair(toy, params, rng)

    (p1, a), (p2, b), (_, c) = make(5), make(5), make(6)
    assert p1 == p2
    np.testing.assert_array_equal(a.ct, b.ct)
    np.testing.assert_array_equal(a.t1, b.t1)
    assert not np.array_equal(a.ct, c.ct) or a.ct.shape != c.ct.shape


def test_unknown_variety_is_an_error():
    with pytest.raises(ValueError, match="variety"):
        S.sample_subject(np.random.default_rng(0), "toy", variety="exotic")
