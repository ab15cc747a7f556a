"""The non-learned baseline of the leave-one-brain-out benchmark (benchmarks/bench_lobo.py)."""

import argparse

import numpy as np
import pytest
import torch

from benchmarks.bench_lobo import baseline_translation, parse_sampler, sampler_label
from ct2mri_cli.style.key import style_key


def test_baseline_orders_csf_grey_white_and_takes_the_keys_histogram():
    rng = np.random.default_rng(0)
    shape = (40, 40, 30)
    labels = rng.integers(0, 3, size=shape)
    labels = np.repeat(np.repeat(labels[::4, ::4, ::3], 4, 0), 4, 1).repeat(3, 2)[: shape[0], : shape[1], : shape[2]]
    hu = np.choose(labels, [8.0, 36.0, 26.0]).astype(np.float32) + rng.normal(0, 1.0, shape).astype(np.float32)
    brain = np.ones(shape, bool)
    brain[:2] = False
    target = np.clip(rng.normal(0.6, 0.15, 50000), 0.01, 1.0)
    key = style_key(target.reshape(50, 1000, 1).astype(np.float32))
    out = baseline_translation(hu, np.eye(4), brain, key)
    assert not out[~brain].any()
    inner = brain & (np.abs(np.gradient(labels.astype(float))[0]) == 0)
    means = [float(out[inner & (labels == k)].mean()) for k in range(3)]
    assert means[0] < means[1] < means[2]  # CSF darkest, then GM (36 HU), WM (26 HU) brightest on T1
    # the output's histogram is the key's (the same target as the models get)
    out_key = style_key(out, brain)
    assert torch.abs(torch.cumsum(out_key[0], 0) - torch.cumsum(key[0], 0)).max() < 0.02


def test_sampler_settings_are_read_as_mode_steps_and_corrections():
    assert parse_sampler("coprediction:3") == ("coprediction", 3, 1)
    assert parse_sampler("ista:10:2") == ("ista", 10, 2)
    assert sampler_label("ista", 50, 1) == "ista S=50 M=1"
    assert sampler_label("independent", 2, 1) == "independent S=2"
    for bad in ("ista", "ista:x", "ista:1:2:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_sampler(bad)


def test_cached_pairs_are_the_generated_ones_and_are_made_once(tmp_path, monkeypatch):
    from benchmarks import bench_lobo

    calls = []

    def fake_generate_pair(source, seed, spacing_mm=None, variety="calibrated", ct_model="mixing"):
        calls.append((source, seed, variety, ct_model))
        rng = np.random.default_rng(seed)
        affine = np.diag([1.0, 1.0, 1.0, 1.0])
        affine[:3, 3] = rng.normal(size=3)
        return argparse.Namespace(
            ct=rng.integers(-1000, 1000, (5, 6, 4)).astype(np.int16),
            t1=rng.integers(0, 900, (5, 6, 4)).astype(np.int16),
            mask=(rng.random((5, 6, 4)) > 0.5).astype(np.uint8),
            affine=affine,
        )

    monkeypatch.setattr(bench_lobo, "generate_pair", fake_generate_pair)
    made = bench_lobo.evaluation_pair("colin27", 11, "wide", tmp_path)
    again = bench_lobo.evaluation_pair("colin27", 11, "wide", tmp_path)
    other = bench_lobo.evaluation_pair("colin27", 12, "wide", tmp_path)
    bench_lobo.evaluation_pair("colin27", 11, "wide", tmp_path, "projection")  # another file
    assert calls == [
        ("colin27", 11, "wide", "mixing"),
        ("colin27", 12, "wide", "mixing"),
        ("colin27", 11, "wide", "projection"),
    ]
    for name in ("ct", "t1", "mask", "affine"):
        np.testing.assert_array_equal(getattr(again, name), getattr(made, name))
        assert getattr(again, name).dtype == getattr(made, name).dtype
    assert not np.array_equal(other.ct, made.ct)
    assert sorted(p.name.split("_")[:3] for p in tmp_path.iterdir()) == [
        ["colin27", "wide", "11"],
        ["colin27", "wide", "12"],
        ["colin27", "wide", "projection"],
    ]
    # another generator (its source files changed) does not read this generator's pairs
    monkeypatch.setattr(bench_lobo, "generator_fingerprint", lambda: "0" * 12)
    bench_lobo.evaluation_pair("colin27", 11, "wide", tmp_path)
    assert len(calls) == 4
