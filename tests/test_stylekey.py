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


def test_a_level_counts_as_the_interval_it_stands_for():
    from ct2mri_cli.style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE

    width = (UPPER_EDGE - LOWER_EDGE) / NUM_BINS
    centre_of_bin_40 = LOWER_EDGE + 40.5 * width
    key = style_key(np.full(10, centre_of_bin_40), quantum=2 * width)
    h = key[0].numpy() / 10.0
    # [c - w, c + w] covers half of bin 40 around its centre plus half of each neighbour
    np.testing.assert_allclose(h[39:42], [0.25, 0.5, 0.25], atol=1e-6)
    assert h.sum() == pytest.approx(1.0) and h[:39].sum() == 0 and h[42:].sum() == 0


def test_integer_levels_coarser_than_the_bins_make_no_comb():
    rng = np.random.default_rng(3)
    smooth = np.clip(rng.normal(0.55, 0.18, 200_000), 0.01, 1.0)
    levels = 80  # fewer levels than bins: a plain histogram leaves bins empty between them
    step = 1.0 / levels
    rounded = np.round(smooth / step) * step
    comb = style_key(rounded)[0].numpy()
    fixed = style_key(rounded, quantum=step)[0].numpy()
    inside = slice(10, 118)
    assert (comb[inside] == 0).sum() > 20
    assert (fixed[inside] == 0).sum() == 0
    assert np.abs(fixed - style_key(smooth)[0].numpy()).max() < 0.05 * fixed.max()


def test_quantisation_step_finds_integer_and_rescaled_levels():
    from ct2mri_cli.style.key import quantisation_step

    assert quantisation_step(np.repeat(np.array([3, 7, 4, 10], dtype=np.int16), 10)) == 1.0
    assert quantisation_step(np.repeat([0.0, 0.5, 2.0, 1.5], 10)) == 0.5
    assert quantisation_step(np.random.default_rng(0).random(1000)) is None
    assert quantisation_step(np.linspace(0.1, 0.9, 64)) is None  # evenly spaced, but each value once


def test_key_distance_is_the_wasserstein_distance_of_the_histograms():
    from ct2mri_cli.style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE, key_distance

    width = (UPPER_EDGE - LOWER_EDGE) / NUM_BINS
    at = lambda b: style_key(np.full(5, LOWER_EDGE + (b + 0.5) * width))
    assert key_distance(at(10), at(10)) == 0.0
    assert key_distance(at(10), at(30)) == pytest.approx(20 * width)
    half = style_key(np.concatenate([np.full(5, LOWER_EDGE + 10.5 * width), np.full(5, LOWER_EDGE + 50.5 * width)]))
    assert key_distance(half, at(10)) == pytest.approx(0.5 * 40 * width)


def test_bins_span_one_thousandth_to_one_inclusive():
    # with edges from 0.001 in steps of 0.999 / 128, 0.0085 lies in the first bin (from 0 it would be the second)
    volume = np.array([0.0085, 0.0085, 0.0085, 1.0]).reshape(4, 1, 1)
    key = style_key(volume)[0].numpy()
    assert key[0] == pytest.approx(7.5) and key[127] == pytest.approx(2.5)  # a voxel at exactly 1.0 counts
