"""Random restyling of training windows: curves, their keys against keys of restyled volumes,
and the training batches they change."""

import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.bridge import from_bridge_range
from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.style.key import key_distance, style_key
from ct2mri_cli.training import restyle as R
from ct2mri_cli.training.config import config_from_dict
from ct2mri_cli.training.data import load_training_data
from tests.training_helpers import synthetic_case, write_dataset


def _volume(seed=0):
    rng = np.random.default_rng(seed)
    mri = np.clip(rng.normal(0.55, 0.2, (16, 24, 24)), 0.0, 1.0).astype(np.float32)
    return mri, rng.random(mri.shape) > 0.3


def test_curves_are_monotone_keep_both_ends_and_spare_the_rest():
    curves = R.draw_curves(torch.Generator().manual_seed(0), 400, 0.5, 0.8)
    assert curves.shape == (400, R.SEGMENTS + 1)
    assert torch.all(curves[:, 0] == 0) and torch.allclose(curves[:, -1], torch.ones(400))
    assert torch.all(torch.diff(curves, dim=1) > 0)
    identity = torch.all(torch.isclose(curves, R.KNOTS.expand(400, -1), atol=1e-6), dim=1)
    assert 160 <= int(identity.sum()) <= 240  # about half restyled
    slopes = torch.diff(curves[~identity], dim=1) * R.SEGMENTS
    ratio = slopes.max(dim=1).values / slopes.min(dim=1).values
    assert float(ratio.max()) <= (1 + 0.8) / (1 - 0.8) + 1e-4 and float(ratio.median()) > 1.5
    assert torch.equal(R.draw_curves(torch.Generator().manual_seed(0), 400, 0.5, 0.8), curves)


def test_curves_interpolate_between_their_knots():
    curves = R.draw_curves(torch.Generator().manual_seed(3), 2, 1.0, 0.6)
    x = torch.rand((2, 3, 5, 7), generator=torch.Generator().manual_seed(4))
    out = R.apply_curves(x, curves)
    for b in range(2):
        expected = np.interp(x[b].numpy(), R.KNOTS.numpy(), curves[b].numpy())
        np.testing.assert_allclose(out[b].numpy(), expected, atol=1e-6)


def test_the_identity_gives_the_key_of_the_volume_exactly():
    mri, mask = _volume()
    counts = torch.from_numpy(R.value_counts(mri, mask))[None]
    identity = R.draw_curves(torch.Generator(), 1, 0.0, 0.5)
    assert torch.equal(R.restyled_keys(counts, identity)[0], style_key(mri, mask))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_restyled_key_is_the_key_of_the_restyled_volume(seed):
    mri, mask = _volume(seed)
    curves = R.draw_curves(torch.Generator().manual_seed(seed), 1, 1.0, 0.8)
    restyled = R.apply_curves(torch.from_numpy(mri)[None], curves)[0].numpy()
    key = R.restyled_keys(torch.from_numpy(R.value_counts(mri, mask))[None], curves)[0]
    truth = style_key(restyled, mask)
    moved = key_distance(style_key(mri, mask), truth)
    assert key_distance(key, truth) < 0.05 * moved


def test_restyled_batches_carry_the_restyled_key(tmp_path):
    folder = write_dataset(tmp_path / "pairs", n_cases=2)
    data = load_training_data(config_from_dict({"data_dir": str(folder), "preset": "tiny", "val_subjects": 0}))
    idx = torch.tensor([0, len(data.train) - 1])
    plain = data.train.batch(idx)
    identity = data.train.batch(idx, curves=R.draw_curves(torch.Generator(), 2, 0.0, 0.5))
    assert all(torch.equal(a, b) for a, b in zip(plain, identity))
    curves = R.draw_curves(torch.Generator().manual_seed(5), 2, 1.0, 0.8)
    x0, y, keys = data.train.batch(idx, curves=curves)
    assert torch.equal(y, plain[1])  # the CT is not restyled
    expected = R.apply_curves(from_bridge_range(plain[0]), curves)
    assert torch.allclose(from_bridge_range(x0), expected, atol=1e-6)
    for b, case in enumerate(data.train.case_of[idx].tolist()):
        _, mri, mask = synthetic_case(case)
        assert torch.allclose(
            keys[b], R.restyled_keys(torch.from_numpy(R.value_counts(mri, mask))[None], curves[b : b + 1])[0]
        )
        assert not torch.equal(keys[b], plain[2][b])


@pytest.mark.parametrize("setting, value", [("restyle", 1.5), ("restyle", -0.1), ("restyle_strength", 1.0)])
def test_restyle_settings_out_of_range_are_refused(tmp_path, setting, value):
    with pytest.raises(Ct2mriError, match=setting):
        config_from_dict({"data_dir": str(tmp_path), "preset": "tiny", setting: value})


def test_training_restyles_its_windows_the_same_way_each_run(tmp_path):
    from ct2mri_cli.training import train
    from ct2mri_cli.training.monitor import read_log

    folder = write_dataset(tmp_path / "pairs", n_cases=2)
    base = {"preset": "tiny", "device": "cpu", "num_threads": 1, "batch_size": 3, "data_dir": str(folder)}
    base |= {"val_subjects": 0, "steps": 2, "log_every": 1, "checkpoint_every": 0}

    def losses(name, **settings):
        train(config_from_dict({**base, **settings}), tmp_path / name, quiet=True)
        return [r["loss"] for r in read_log(tmp_path / name / "log.jsonl") if r["kind"] == "train"]

    plain = losses("plain")
    restyled = losses("restyled", restyle=1.0, restyle_strength=0.9)
    assert restyled == losses("again", restyle=1.0, restyle_strength=0.9)
    assert restyled[0] != plain[0]  # the first batch's MRI windows and keys were restyled
