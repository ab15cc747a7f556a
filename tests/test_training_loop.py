import numpy as np
import pytest
import torch

from ct2mri_cli.diffusion.sampler import sample_volume
from ct2mri_cli.evaluation.metrics import psnr
from ct2mri_cli.network import PRESETS, network_denoiser
from ct2mri_cli.preprocessing.config import PreprocessConfig
from ct2mri_cli.style.key import style_key
from ct2mri_cli.training import config_from_dict, load_config, train
from ct2mri_cli.training.checkpoint import load_checkpoint
from ct2mri_cli.training.ema import EMA
from ct2mri_cli.training.loop import newer_best
from ct2mri_cli.training.monitor import PHASES, read_log
from ct2mri_cli.training.validation import middle_slab
from ct2mri_cli.weights import load_weights
from tests.training_helpers import synthetic_case, write_dataset

BASE = {"preset": "tiny", "device": "cpu", "num_threads": 1, "batch_size": 3, "val_steps": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "pairs", n_cases=3)


def _config(data, **kw):
    return config_from_dict({**BASE, "data_dir": str(data), **kw})


def test_ema_update_by_hand():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 2.0]]))
        net.bias.fill_(4.0)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, 0.0]]))
        net.bias.fill_(-6.0)
    ema.update(net, step=1)
    torch.testing.assert_close(ema.model.weight, torch.tensor([[1.2, 1.8]]))
    torch.testing.assert_close(ema.model.bias, torch.tensor([3.0]))
    late = EMA(net, decay=0.9, start=5)
    with torch.no_grad():
        net.bias.fill_(1.0)
    late.update(net, step=5)  # before the start the EMA copies
    assert late.model.bias.item() == 1.0


@pytest.mark.slow
def test_tiny_network_overfits_one_pair(tmp_path):
    data = write_dataset(tmp_path / "one", n_cases=1)
    config = _config(
        data, batch_size=4, val_subjects=0, steps=300, lr=2e-3, flip=False, log_every=1, checkpoint_every=0
    )
    train(config, tmp_path / "run", quiet=True)
    losses = [r["loss"] for r in read_log(tmp_path / "run" / "log.jsonl") if r["kind"] == "train"]
    assert len(losses) == 300
    first, last = np.mean(losses[:10]), np.mean(losses[-25:])
    assert first / last >= 5.0, (first, last)


def test_resume_continues_exactly(dataset, tmp_path):
    common = {"grad_accumulation": 2, "log_every": 2, "checkpoint_every": 3, "val_every": 4}
    whole = train(_config(dataset, steps=8, **common), tmp_path / "whole", quiet=True)
    train(_config(dataset, steps=4, **common), tmp_path / "split", quiet=True)
    split = train(_config(dataset, steps=8, **common), tmp_path / "split", quiet=True, resume=True)
    assert whole.parameters_sha256 == split.parameters_sha256
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 8
    for part in ("model", "ema"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), (part, name)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["rng"][0]["sampler"]["epoch"] == b["rng"][0]["sampler"]["epoch"]
    # the resumed log continues the first part's records
    steps = [r["step"] for r in read_log(tmp_path / "split" / "log.jsonl") if r["kind"] == "train"]
    assert steps == [2, 4, 6, 8]
    # the run changed something: 8 steps differ from 4
    four = load_checkpoint(tmp_path / "split" / "checkpoints" / "step_00000003.pt")
    assert not torch.equal(four["model"]["conv_in.weight"], b["model"]["conv_in.weight"])


def test_outputs_export_and_log(dataset, tmp_path):
    run = tmp_path / "run"
    config = _config(dataset, steps=6, log_every=2, checkpoint_every=2, keep_checkpoints=2, val_every=3, seed=4)
    result = train(config, run, quiet=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000004.pt",
        "step_00000006.pt",
    ]
    assert load_config(run / "config.json") == config

    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["config"] == config.to_dict() and ckpt["step"] == 6
    bundle = load_weights(run / "model.safetensors")
    for name, tensor in bundle.network.state_dict().items():
        assert torch.equal(tensor, ckpt["ema"][name])
    assert not torch.equal(ckpt["ema"]["conv_in.weight"], ckpt["model"]["conv_in.weight"])
    assert bundle.network_config == PRESETS["tiny"]
    assert bundle.preprocess == PreprocessConfig(spacing_mm=2.0, in_plane=(32, 32), frame="native")  # no frame recorded
    held_out = {r["cases"][0]["case"] for r in read_log(run / "log.jsonl") if r["kind"] == "val"}
    train_keys = []
    for i in range(3):
        if f"case{i:02d}" not in held_out:
            _, mri, mask = synthetic_case(i)
            train_keys.append(style_key(mri, mask))
    torch.testing.assert_close(bundle.default_style_key, torch.stack(train_keys).mean(0))
    prov = bundle.provenance
    assert prov["training_steps"] == 6 and prov["seed"] == 4 and prov["data"] == dataset.name
    assert prov["final_loss"] == pytest.approx(result.final_loss) and "date" in prov

    records = read_log(run / "log.jsonl")
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == [2, 4, 6]
    for r in train_records:
        assert r["lr"] == 1e-4 and r["samples_per_s"] > 0 and r["loss"] > 0
        assert set(r["time"]) == set(PHASES) and sum(r["time"].values()) == pytest.approx(1.0)
    vals = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in vals] == [3, 6]
    best = max(vals, key=lambda r: r["psnr"])
    assert result.best["step"] == best["step"] and (run / "best.safetensors").is_file()
    assert load_weights(run / "best.safetensors").provenance["training_steps"] == best["step"]
    assert records[-1]["kind"] == "end" and records[-1]["ranks_identical"] is True
    assert (run / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the logged validation PSNR is what the exported model gives on the held-out case
    name = vals[-1]["cases"][0]["case"]
    ct, mri, mask = synthetic_case(int(name[-2:]))
    key = style_key(mri, mask)
    out = sample_volume(
        network_denoiser(bundle.network),
        torch.from_numpy(ct) * 2 - 1,
        key,
        steps=3,
        corrections=1,
        step_size=0.5,
        mode="ista",
    )
    pred = ((out + 1) / 2).clamp(0, 1).numpy()
    assert psnr(pred, mri, mask) == pytest.approx(vals[-1]["psnr"], abs=1e-3)


def test_middle_slab_is_centred_on_the_brain():
    mask = np.zeros((20, 4, 4), bool)
    mask[6:10] = True  # centre of mass at slice 7.5
    assert middle_slab(mask, 2) == slice(7, 9)
    assert middle_slab(mask, 4) == slice(6, 10)
    assert middle_slab(mask, 0) == slice(0, 20)
    assert middle_slab(mask, 25) == slice(0, 20)
    edge = np.zeros((20, 4, 4), bool)
    edge[0] = True
    assert middle_slab(edge, 6) == slice(0, 6)  # kept inside the volume
    assert middle_slab(np.zeros((9, 2, 2), bool), 3) == slice(3, 6)


def test_validation_scores_a_slab_of_the_held_out_case(dataset, tmp_path):
    run = tmp_path / "run"
    train(_config(dataset, steps=2, val_every=2, val_slices=4, checkpoint_every=0, seed=1), run, quiet=True)
    (val,) = [r for r in read_log(run / "log.jsonl") if r["kind"] == "val"]
    (case,) = val["cases"]
    ct, mri, mask = synthetic_case(int(case["case"][-2:]))
    slab = middle_slab(mask, 4)
    assert case["slices"] == [slab.start, slab.stop] == [4, 8] and val["slices"] == 4
    bundle = load_weights(run / "model.safetensors")
    out = sample_volume(
        network_denoiser(bundle.network),
        torch.from_numpy(ct[slab]) * 2 - 1,
        style_key(mri, mask),
        steps=3,
        corrections=1,
        step_size=0.5,
        mode="ista",
    )
    pred = ((out + 1) / 2).clamp(0, 1).numpy()
    assert psnr(pred, mri[slab], mask[slab]) == pytest.approx(case["psnr"], abs=1e-3)


def test_a_stop_during_validation_keeps_the_training(dataset, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ct2mri_cli.training.loop.validate_cases", interrupted)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_config(dataset, steps=3, val_every=2, checkpoint_every=0), run, quiet=True)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2  # written before the validation
    assert not (run / "model.safetensors").exists()
    with pytest.raises(KeyboardInterrupt):
        train(_config(dataset, steps=3, val_every=2, checkpoint_every=0), run, quiet=True, resume=True)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 3
    assert load_weights(run / "model.safetensors").provenance["training_steps"] == 3  # exported before it too


def test_resume_keeps_a_best_model_found_after_the_last_checkpoint(dataset, tmp_path):
    run = tmp_path / "run"
    result = train(_config(dataset, steps=4, val_every=2, checkpoint_every=0), run, quiet=True)
    found = newer_best(None, run / "best.safetensors", step=4)
    assert found == result.best
    assert newer_best(None, run / "best.safetensors", step=result.best["step"] - 1) is None  # not yet found then
    older = {"step": 0, "psnr": 1.0}
    assert newer_best(older, run / "best.safetensors", step=4) == result.best
    assert newer_best(older, tmp_path / "missing.safetensors", step=4) is older
