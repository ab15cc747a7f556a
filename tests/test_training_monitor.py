import json
import math
import time

import pytest
import torch

from ct2mri_cli.training.monitor import PHASES, JsonLog, PhaseTimer, read_log


def test_log_lines_and_truncation_on_resume(tmp_path):
    path = tmp_path / "log.jsonl"
    log = JsonLog(path)
    for step in range(1, 6):
        log.write({"kind": "train", "step": step, "loss": 1.0 / step})
    log.write({"kind": "val", "step": 5, "psnr": math.inf})
    assert [r["step"] for r in read_log(path)] == [1, 2, 3, 4, 5, 5]
    assert read_log(path)[-1]["psnr"] == "inf"  # JSON has no infinity
    # a run resumed from the step-3 checkpoint drops what was logged after it
    JsonLog(path, keep_until_step=3).write({"kind": "train", "step": 4, "loss": 0.0})
    assert [(r["step"], r["loss"]) for r in read_log(path)] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3)), (4, 0.0)]
    JsonLog(tmp_path / "other.jsonl", enabled=False).write({"step": 1})
    assert not (tmp_path / "other.jsonl").exists()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_phase_timer_fractions():
    timer = PhaseTimer(torch.device("cpu"))
    time.sleep(0.02)
    timer.mark("data")
    time.sleep(0.06)
    timer.mark("network")
    seconds, fractions = timer.take()
    assert set(fractions) == set(PHASES) and sum(fractions.values()) == pytest.approx(1.0)
    assert seconds >= 0.08 and fractions["network"] > fractions["data"] > 0 and fractions["ema"] == 0
    assert timer.take()[0] == 0.0
