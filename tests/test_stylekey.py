import numpy as np
import pytest
import torch

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.style.key import (
    average_style_keys,
    load_style_key,
    save_style_key,
    style_key,
)

EDGES = np.linspace(0.001, 1.0, 129)
CENTRES = (EDGES[:-1] + EDGES[1:]) / 2


def _volume_with_counts(counts: dict[int, int], background: int = 500) -> np.ndarray:
    values = [np.full(n, CENTRES[b]) for b, n in counts.items()]
    values.append(np.zeros(background))
    flat = np.concatenate(values)
    np.random.default_rng(0).shuffle(flat)
    return flat.reshape(-1, 1, 1)


def test_key_matches_hand_computation():
    volume = _volume_with_counts({0: 10, 5: 30, 6: 40, 127: 20})
    key_tensor = style_key(volume)
    assert key_tensor.dtype == torch.float32 and key_tensor.shape == (3, 128)
    key = key_tensor.numpy().astype(np.float64)
    hist = np.zeros(128)
    hist[[0, 5, 6, 127]] = [0.1, 0.3, 0.4, 0.2]
    hist *= 10
    np.testing.assert_allclose(key[0], hist, atol=1e-6)
    np.testing.assert_allclose(key[1], np.cumsum(hist), atol=1e-5)
    differential = np.zeros(128)
    differential[0] = 1.0  # h0 - 0
    differential[1] = -1.0
    differential[5], differential[6], differential[7] = 3.0, 1.0, -4.0
    differential[127] = 2.0
    np.testing.assert_allclose(key[2], 10 * differential, atol=1e-5)
    assert key[1, -1] == pytest.approx(10.0, abs=1e-5)


def test_background_and_out_of_range_excluded():
    base = _volume_with_counts({3: 50, 90: 50}, background=0)
    padded = np.concatenate([base, np.zeros((200, 1, 1)), np.full((7, 1, 1), 0.001), np.full((5, 1, 1), 1.5)])
    torch.testing.assert_close(style_key(padded), style_key(base))


def test_mask_restricts_histogram():
    volume = _volume_with_counts({10: 40, 100: 60}, background=0)
    mask = np.isclose(volume, CENTRES[10])
    key = style_key(volume, mask)
    assert key[0, 10].item() == pytest.approx(10.0)
    assert key[0].sum().item() == pytest.approx(10.0)


def test_empty_volume_is_an_error():
    with pytest.raises(Ct2mriError, match="no voxel"):
        style_key(np.zeros((4, 4, 4)))


def test_average_of_keys():
    a = style_key(_volume_with_counts({1: 10}))
    b = style_key(_volume_with_counts({2: 10}))
    avg = average_style_keys([a, b])
    torch.testing.assert_close(avg, (a + b) / 2)
    with pytest.raises(ValueError):
        average_style_keys([])


def test_save_load_bit_exact(tmp_path):
    key = style_key(np.random.default_rng(1).random((8, 8, 8)))
    path = tmp_path / "k.safetensors"
    save_style_key(path, key, {"source": "random"})
    loaded, meta = load_style_key(path)
    assert torch.equal(loaded, key)
    assert meta["source"] == "random" and meta["format"] == "ct2mri-style-key"
    assert [p.name for p in tmp_path.iterdir()] == ["k.safetensors"]


def test_load_rejects_bad_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(Ct2mriError, match="junk.safetensors"):
        load_style_key(junk)
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"style_key": torch.zeros(2, 128)}, str(wrong))
    with pytest.raises(Ct2mriError, match="shape 3x128"):
        load_style_key(wrong)
    other = tmp_path / "other.safetensors"
    save_file({"weights": torch.zeros(3, 128)}, str(other))
    with pytest.raises(Ct2mriError, match="not a style key"):
        load_style_key(other)
