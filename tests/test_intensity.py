"""Intensity normalisation: CT window and MRI robust min-max."""

from __future__ import annotations

import numpy as np
import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.preprocessing.intensity import (
    mri_percentile_range,
    normalize_ct,
    normalize_mri,
)


def test_ct_window_maps_linearly_and_clips():
    hu = np.array([-1000.0, -1.0, 0.0, 20.0, 40.0, 80.0, 81.0, 1500.0])
    np.testing.assert_allclose(normalize_ct(hu), [0, 0, 0, 0.25, 0.5, 1, 1, 1], atol=1e-7)
    np.testing.assert_allclose(normalize_ct(hu, (-20.0, 180.0)), [0, 0.095, 0.1, 0.2, 0.3, 0.5, 0.505, 1], atol=1e-6)
    assert normalize_ct(hu).dtype == np.float32
    with pytest.raises(Ct2mriError, match="lo < hi"):
        normalize_ct(hu, (80.0, 0.0))


def test_mri_robust_min_max_uses_percentiles_inside_the_mask():
    rng = np.random.default_rng(0)
    data = rng.gamma(4.0, 50.0, size=(30, 30, 30))
    mask = np.zeros(data.shape, bool)
    mask[5:25, 5:25, 5:25] = True
    data[~mask] = 5000.0  # outside values must not influence the range
    lo, hi = np.percentile(data[mask], [0.5, 99.5])
    assert mri_percentile_range(data, mask) == pytest.approx((lo, hi))
    out = normalize_mri(data, mask)
    expected = np.clip((data - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out[mask], expected[mask], atol=1e-6)
    assert np.all(out[~mask] == 0.0)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert np.mean(out[mask] == 1.0) == pytest.approx(0.005, abs=0.002)
    kept = normalize_mri(data, mask, percentiles=(1.0, 99.0), zero_outside=False)
    assert np.all(kept[~mask] == 1.0)


def test_mri_errors():
    data = np.ones((4, 4, 4))
    with pytest.raises(Ct2mriError, match="mask is empty"):
        normalize_mri(data, np.zeros((4, 4, 4), bool))
    with pytest.raises(Ct2mriError, match="constant"):
        normalize_mri(data, np.ones((4, 4, 4), bool), source="t1.nii")
    with pytest.raises(Ct2mriError, match="percentiles"):
        normalize_mri(np.arange(64.0).reshape(4, 4, 4), None, percentiles=(60.0, 40.0))
