import json

import nibabel as nib
import numpy as np
import pytest
import torch

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.style.key import style_key
from ct2mri_cli.training.config import config_from_dict
from ct2mri_cli.training.data import (
    load_case_volumes,
    load_training_data,
    open_dataset,
    split_subjects,
)
from ct2mri_cli.training.window_order import WindowOrder
from tests.training_helpers import synthetic_case, write_dataset


def _config(folder, **kw):
    return config_from_dict({"data_dir": str(folder), "preset": "tiny", **kw})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "pairs", n_cases=3)


def test_cases_are_read_in_model_order(dataset):
    manifest = open_dataset(dataset)
    case = load_case_volumes(manifest, manifest.cases[1])
    ct_ref, mri_ref, mask_ref = synthetic_case(1)
    assert case.name == case.subject == "case01" and case.ct.shape == (12, 32, 32)
    np.testing.assert_array_equal(case.ct, ct_ref)
    np.testing.assert_array_equal(case.mri, mri_ref)
    np.testing.assert_array_equal(case.mask, mask_ref)
    assert manifest.preprocess.in_plane == (32, 32) and len(manifest.sha256) == 64


def test_windows_are_centred_on_brain_slices(dataset):
    data = load_training_data(_config(dataset, val_subjects=0))
    # brain on slices 2..9 of 12 in every case -> 8 windows per case
    assert len(data.train) == 24 and data.train.case_names == ["case00", "case01", "case02"]
    x0, y, style = data.train.batch(torch.arange(len(data.train)))
    assert x0.shape == (24, 3, 32, 32) and y.shape == (24, 3, 32, 32) and style.shape == (24, 3, 128)
    for w in range(24):
        case = int(data.train.case_of[w])
        ct, mri, mask = synthetic_case(case)
        centre = 2 + w % 8
        assert mask[centre].any()
        for k in range(3):
            np.testing.assert_allclose(x0[w, k].numpy(), mri[centre - 1 + k] * 2 - 1, atol=1e-3)
            np.testing.assert_allclose(y[w, k].numpy(), ct[centre - 1 + k] * 2 - 1, atol=1e-3)


def test_edge_windows_get_a_background_slice(tmp_path):
    folder = write_dataset(tmp_path / "d", n_cases=1)
    # give the brain the first slice: its window reaches the virtual background slice below
    manifest = json.loads((folder / "manifest.json").read_text())
    mask = np.zeros((12, 32, 32), np.uint8)
    mask[0, 10:20, 10:20] = 1
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), np.eye(4)), str(folder / manifest["cases"][0]["mask"]))
    data = load_training_data(_config(folder, val_subjects=0))
    assert len(data.train) == 1
    x0, y, _ = data.train.batch(torch.tensor([0]))
    assert torch.all(x0[0, 0] == -1) and torch.all(y[0, 0] == -1)
    _, mri, _ = synthetic_case(0)
    np.testing.assert_allclose(x0[0, 1].numpy(), mri[0] * 2 - 1, atol=1e-3)


def test_flip_mirrors_both_images_left_right(dataset):
    data = load_training_data(_config(dataset, val_subjects=0))
    idx = torch.tensor([0, 5, 9])
    flips = torch.tensor([True, False, True])
    x0, y, s = data.train.batch(idx)
    fx0, fy, fs = data.train.batch(idx, flips)
    assert torch.equal(fx0[0], x0[0].flip(-1)) and torch.equal(fy[2], y[2].flip(-1))
    assert torch.equal(fx0[1], x0[1]) and torch.equal(fy[1], y[1])
    assert not torch.equal(fx0[0], x0[0])
    assert torch.equal(fs, s)  # the style key does not change with a flip


def test_each_window_carries_its_subjects_key(dataset, tmp_path):
    data = load_training_data(_config(dataset, val_subjects=0))
    expected = [style_key(m, k) for _, m, k in (synthetic_case(i) for i in range(3))]
    _, _, styles = data.train.batch(torch.arange(len(data.train)))
    for w in range(len(data.train)):
        assert torch.equal(styles[w], expected[int(data.train.case_of[w])])
    assert not torch.equal(expected[0], expected[1])
    assert torch.allclose(data.average_key(), torch.stack(expected).mean(0), atol=1e-6)
    # without key files in the manifest the key comes from the whole MRI volume
    bare = write_dataset(tmp_path / "bare", n_cases=2, with_keys=False)
    data = load_training_data(_config(bare, val_subjects=0))
    assert torch.equal(data.train.keys[1], style_key(synthetic_case(1)[1]))


def test_validation_split_is_by_subject(dataset, tmp_path):
    data = load_training_data(_config(dataset, val_subjects=1, seed=3))
    held = [c.name for c in data.validation]
    assert len(held) == 1 and held[0] not in data.train.case_names and len(data.train) == 16
    assert len(data.train_keys) == 2
    again = load_training_data(_config(dataset, val_subjects=1, seed=3))
    assert [c.name for c in again.validation] == held
    # cases of one subject stay together
    picks = {frozenset(split_subjects(["a", "a", "b", "c"], 1, s)) for s in range(20)}
    assert picks == {frozenset({"a"}), frozenset({"b"}), frozenset({"c"})}
    folder = write_dataset(tmp_path / "subjects", n_cases=4)
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry, subject in zip(manifest["cases"], ["s1", "s1", "s2", "s3"]):
        entry["subject"] = subject
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for seed in range(6):
        data = load_training_data(_config(folder, val_subjects=1, seed=seed))
        names = {c.name for c in data.validation}
        assert names in ({"case00", "case01"}, {"case02"}, {"case03"})
    with pytest.raises(Ct2mriError, match="at least one must remain for training"):
        load_training_data(_config(folder, val_subjects=3))


def _message(config):
    with pytest.raises(Ct2mriError) as info:
        load_training_data(config)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_data_folders(tmp_path):
    assert "data folder not found" in _message(_config(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    assert "no manifest (run `ct2mri preprocess` first)" in _message(_config(tmp_path / "empty"))
    folder = write_dataset(tmp_path / "d", n_cases=2)
    (folder / "case01_ct.nii.gz").unlink()
    assert "case01_ct.nii.gz: missing (listed in" in _message(_config(folder))
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["cases"][0]["shape"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "case entry 0 lacks one of case, ct, mri, mask, shape" in _message(_config(folder))
    manifest["cases"] = []
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "the manifest lists no cases" in _message(_config(folder))
    (folder / "manifest.json").write_text('{"format": "something"}')
    assert "not a ct2mri preprocessing manifest" in _message(_config(folder))


def test_mismatched_shapes(tmp_path):
    folder = write_dataset(tmp_path / "d", n_cases=2)
    nib.save(nib.Nifti1Image(np.zeros((32, 32, 10), np.float32), np.eye(4)), str(folder / "case01_mri.nii.gz"))
    assert "case01_mri.nii.gz: shape (10, 32, 32) differs from the manifest's (12, 32, 32)" in _message(_config(folder))
    other = write_dataset(tmp_path / "e", n_cases=2, shapes=[(12, 32, 32), (12, 32, 16)])
    assert "all cases must share the model grid's in-plane size" in _message(_config(other))
    odd = write_dataset(tmp_path / "f", n_cases=2, shape=(12, 30, 30))
    with pytest.raises(Ct2mriError, match="in-plane size 30x30 is not a multiple of 4"):
        load_training_data(config_from_dict({"data_dir": str(odd)}), divisor=4)


def test_empty_dataset(tmp_path):
    folder = write_dataset(tmp_path / "d", n_cases=2, empty_masks=True)
    assert "no training slice holds brain" in _message(_config(folder, val_subjects=0))


def test_window_order_shards_cover_each_epoch_once():
    n = 11
    orders = [WindowOrder(n, seed=5, rank=r, world_size=2) for r in range(2)]
    per_rank = -(-n // 2)
    seen = [torch.cat([s.next(1)[0] for _ in range(per_rank)]) for s in orders]
    union = torch.cat(seen)
    assert sorted(set(union.tolist())) == list(range(n))  # all windows, padding repeats one
    assert len(union) == 12
    # the next epoch is a different order
    assert not torch.equal(torch.cat([orders[0].next(1)[0] for _ in range(per_rank)]), seen[0])


def test_window_order_state_round_trip():
    a = WindowOrder(7, seed=1)
    a.next(5)
    state = a.state_dict()
    expected = [a.next(4) for _ in range(3)]
    b = WindowOrder(7, seed=1)
    b.load_state_dict(state)
    for idx, flips in expected:
        got_idx, got_flips = b.next(4)
        assert torch.equal(idx, got_idx) and torch.equal(flips, got_flips)
