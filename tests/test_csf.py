"""The CSF agreement of a synthetic T1 with its CT, against overlaps computed by hand."""

import numpy as np
import pytest

from ct2mri_cli.evaluation.csf import csf_agreement, ct_csf, darkest_share

SPACING = (1.0, 1.0, 1.0)


def _phantom(noise_hu: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 40^3 brain of 35 HU tissue with a 10 x 20 x 20 block of 8 HU CSF, and its ideal T1."""
    brain = np.ones((40, 40, 40), dtype=bool)
    ct = np.full(brain.shape, 35.0)
    ct[10:20, 10:30, 10:30] = 8.0
    ct += np.random.default_rng(seed).normal(0.0, noise_hu, ct.shape) if noise_hu else 0.0
    t1 = np.full(brain.shape, 0.8)
    t1[10:20, 10:30, 10:30] = 0.2
    return ct, t1, brain


def test_an_output_dark_exactly_where_the_ct_shows_csf_scores_one():
    ct, t1, brain = _phantom()
    result = csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0)
    assert result.dice == pytest.approx(1.0)
    assert result.csf_share == pytest.approx(10 * 20 * 20 / 40**3)


def test_csf_drawn_five_voxels_off_overlaps_by_half():
    ct, _, brain = _phantom()
    t1 = np.full(brain.shape, 0.8)
    t1[15:25, 10:30, 10:30] = 0.2  # the same block moved by half its depth
    assert csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0).dice == pytest.approx(0.5)


def test_the_output_s_style_does_not_change_the_score():
    ct, _, brain = _phantom()
    t1 = np.full(brain.shape, 0.8)
    t1[12:22, 10:30, 10:30] = 0.3
    t1 += np.linspace(0.0, 0.05, 40)[:, None, None]  # a gentle bias field
    styled = 0.1 + 0.7 * t1**2  # another contrast curve, increasing
    plain = csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0).dice
    assert plain == pytest.approx(0.8)  # 8 of 10 rows shared
    assert csf_agreement(ct, styled, brain, SPACING, smoothing_mm=0.0).dice == pytest.approx(plain)


def test_a_random_output_scores_about_the_csf_share():
    ct, _, brain = _phantom()
    t1 = np.random.default_rng(3).random(brain.shape)
    result = csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0)
    assert result.dice == pytest.approx(result.csf_share, abs=0.01)


def test_smoothing_keeps_ct_noise_out_of_the_csf_map():
    ct, t1, brain = _phantom(noise_hu=10.0)
    speckled = ct_csf(ct, brain, SPACING, smoothing_mm=0.0)
    assert np.count_nonzero(speckled[30:]) > 0.01 * speckled[30:].size  # noise alone crosses 18 HU here
    assert np.count_nonzero(ct_csf(ct, brain, SPACING)[30:]) == 0
    assert csf_agreement(ct, t1, brain, SPACING).dice > 0.9
    assert csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0).dice < 0.9


def test_only_the_brain_counts():
    ct, t1, brain = _phantom()
    brain[:, :, 35:] = False
    ct[:, :, 35:] = 0.0  # CSF-dense outside the brain: ignored
    t1[:, :, 35:] = 1.0
    assert csf_agreement(ct, t1, brain, SPACING, smoothing_mm=0.0).dice == pytest.approx(1.0)
    chosen = darkest_share(t1, brain, 0.25)
    assert not chosen[~brain].any() and chosen.sum() == round(0.25 * brain.sum())
