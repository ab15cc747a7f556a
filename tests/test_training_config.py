import json

import pytest

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.network import PRESETS
from ct2mri_cli.training.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_value,
    resume_conflicts,
    settings_from_options,
)


def test_defaults_follow_the_released_training():
    c = TrainConfig()
    assert (c.lr, c.ema_decay, c.ema_every, c.loss, c.preset) == (1e-4, 0.995, 1, "l1", "small")
    assert c.network_config() == PRESETS["small"]


def test_toml_file_with_network_table_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'preset = "tiny"\nsteps = 500\nlr = 2e-4\nadam_betas = [0.9, 0.99]\n'
        "[network]\nbase_channels = 8\nchannel_mult = [1, 2, 2]\n"
    )
    c = load_config(path, ["steps=700", "loss=weighted_l2", "network.num_res_blocks=2", "flip=false"])
    assert c.preset == "tiny" and c.steps == 700 and c.lr == 2e-4 and c.adam_betas == (0.9, 0.99)
    assert c.loss == "weighted_l2" and c.flip is False
    net = c.network_config()
    assert (net.base_channels, net.channel_mult, net.num_res_blocks) == (8, (1, 2, 2), 2)
    assert net.head_channels == PRESETS["tiny"].head_channels  # untouched preset fields stay


def test_json_file_and_round_trip(tmp_path):
    c = config_from_dict({"preset": "tiny", "batch_size": 3, "network": {"dropout": 0.1}})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(c.to_dict()))
    assert load_config(path) == c


def test_train_options_override_the_file_and_a_resumed_run_lies_under_all(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('preset = "tiny"\nsteps = 500\nlr = 2e-4\nval_every = 7\n')
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({"seed": 9, "steps": 3, "lr": 1.0}))
    c = settings_from_options(
        "data", config_file=path, steps=600, overrides=["steps=700"], no_validation=True, resumed_config=saved
    )
    assert (c.preset, c.steps, c.lr, c.val_every, c.seed, c.data_dir) == ("tiny", 700, 2e-4, 0, 9, "data")
    assert settings_from_options("data", config_file=path, steps=600).steps == 600
    assert settings_from_options("data", resumed_config=tmp_path / "none.json") == TrainConfig(data_dir="data")


def test_value_parsing():
    assert parse_value("3") == 3 and parse_value("1e-4") == 1e-4 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value("weighted_l2") == "weighted_l2"
    assert parse_value('"007"') == "007"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"learning_rate": 1e-4}, "unknown training setting 'learning_rate'"),
        ({"network": {"width": 3}}, "unknown network setting 'width'"),
        ({"steps": 0}, "setting steps = 0: must be >= 1"),
        ({"steps": 2.5}, "setting steps = 2.5: expected an integer"),
        ({"batch_size": True}, "expected an integer"),
        ({"lr": "fast"}, "setting lr = 'fast': expected a number"),
        ({"ema_decay": 1.0}, "must be in [0, 1)"),
        ({"loss": "l2"}, "expected one of l1, weighted_l2"),
        ({"preset": "huge"}, "expected one of " + ", ".join(sorted(PRESETS))),
        ({"device": "gpu"}, "expected auto, cpu, cuda, cuda:N or mps"),
        ({"val_steps": 1}, "must be >= 2"),
        ({"network": {"in_channels": 4}}, "fixed by the method at 6"),
        ({"network": {"attention_levels": [5]}}, "levels run from 0 to 2"),
        ({"adam_betas": [0.9]}, "a list of 2 values"),
        ({"flip": "yes"}, "expected true or false"),
    ],
)
def test_bad_settings_fail_in_one_line(data, message):
    with pytest.raises(Ct2mriError) as info:
        config_from_dict(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_overrides_and_files(tmp_path):
    with pytest.raises(Ct2mriError, match="expected key=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(Ct2mriError, match="unknown training setting 'stepz'"):
        apply_overrides({}, ["stepz=3"])
    with pytest.raises(Ct2mriError, match="configuration file not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(Ct2mriError, match="cannot parse"):
        load_config(bad)
    other = tmp_path / "run.yaml"
    other.write_text("steps: 3\n")
    with pytest.raises(Ct2mriError, match=".toml or .json"):
        load_config(other)


def test_resume_may_change_only_harmless_settings():
    saved = config_from_dict({"preset": "tiny", "steps": 10})
    assert resume_conflicts(saved, config_from_dict({"preset": "tiny", "steps": 20, "val_every": 5})) == []
    changed = config_from_dict({"preset": "tiny", "lr": 1e-3, "network": {"base_channels": 8}})
    assert resume_conflicts(saved, changed) == ["network", "lr"]


def test_the_learning_rate_warms_up_then_follows_the_schedule():
    import math

    from ct2mri_cli.training.config import TrainConfig

    constant = TrainConfig(lr=2e-4, steps=100)
    assert [constant.learning_rate(s) for s in (1, 50, 100)] == [2e-4] * 3
    cosine = TrainConfig(lr=2e-4, steps=100, lr_schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert cosine.learning_rate(1) == pytest.approx(2e-5) and cosine.learning_rate(10) == pytest.approx(2e-4)
    for step in (11, 40, 55, 99, 100):
        fraction = (step - 10) / 90
        expected = 2e-5 + (2e-4 - 2e-5) * (1 + math.cos(math.pi * fraction)) / 2
        assert cosine.learning_rate(step) == pytest.approx(expected, rel=1e-12), step
    assert cosine.learning_rate(100) == pytest.approx(2e-5)  # the floor at the last step
    assert cosine.learning_rate(55) == pytest.approx(1.1e-4)  # half-way down
