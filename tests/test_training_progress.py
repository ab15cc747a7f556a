"""``progress.png``: the run's loss, validation scores and learning rate drawn from its log."""

from __future__ import annotations

import json
import math

import pytest
from matplotlib.image import imread

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.training.monitor import JsonLog
from ct2mri_cli.training.progress import SIZE_PX, read_records, write_progress_plot


def _log(path, steps=200, val_every=50, loss0=1.0):
    log = JsonLog(path)
    for step in range(10, steps + 1, 10):
        log.write(
            {
                "kind": "train",
                "step": step,
                "loss": loss0 * math.exp(-step / 40),
                "lr": 1e-4 * (1 - step / (2 * steps)),
                "samples_per_s": 12.0,
                "time": {"data": 0.1},
            }
        )
        if val_every and step % val_every == 0:
            log.write({"kind": "val", "step": step, "psnr": 20 + step / 50, "ssim": 0.5 + step / 1000, "mae": 0.05})
    log.write({"kind": "end", "step": steps, "final_loss": 0.01})


def _check_png(path):
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert imread(path).shape[:2] == (SIZE_PX[1], SIZE_PX[0])


def test_progress_plot_of_a_run(tmp_path):
    _log(tmp_path / "log.jsonl")
    write_progress_plot(tmp_path / "log.jsonl", tmp_path / "progress.png")
    _check_png(tmp_path / "progress.png")
    first = (tmp_path / "progress.png").read_bytes()
    write_progress_plot(tmp_path / "log.jsonl", tmp_path / "progress.png")  # rewritten in place, the same bytes
    assert (tmp_path / "progress.png").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "progress.png"]


def test_a_log_without_validation_and_a_cut_off_line(tmp_path):
    _log(tmp_path / "log.jsonl", val_every=0)
    JsonLog(tmp_path / "log.jsonl").write({"kind": "val", "step": 200, "psnr": math.nan, "ssim": math.inf, "mae": 1.0})
    with (tmp_path / "log.jsonl").open("a") as handle:
        handle.write('{"kind": "train", "step": 21')  # a killed run's last line
    write_progress_plot(tmp_path / "log.jsonl", tmp_path / "progress.png")
    _check_png(tmp_path / "progress.png")
    records = read_records(tmp_path / "log.jsonl")
    assert [r["kind"] for r in records][-2:] == ["end", "val"] and len(records) == 22
    assert records[-1]["psnr"] == "nan"  # logged as a string, plotted as no point


def test_the_plots_differ_with_the_log(tmp_path):
    _log(tmp_path / "a.jsonl")
    _log(tmp_path / "b.jsonl", loss0=3.0)
    write_progress_plot(tmp_path / "a.jsonl", tmp_path / "a.png")
    write_progress_plot(tmp_path / "b.jsonl", tmp_path / "b.png")
    assert (imread(tmp_path / "a.png") != imread(tmp_path / "b.png")).any()


@pytest.mark.parametrize("content", ["", "not json\n", json.dumps({"kind": "val", "step": 5, "psnr": 20}) + "\n"])
def test_a_log_with_nothing_to_plot_is_a_one_line_error(tmp_path, content):
    (tmp_path / "log.jsonl").write_text(content)
    with pytest.raises(Ct2mriError, match="no training record"):
        write_progress_plot(tmp_path / "log.jsonl", tmp_path / "progress.png")
    with pytest.raises(Ct2mriError, match="cannot read"):
        write_progress_plot(tmp_path / "missing.jsonl", tmp_path / "progress.png")
    assert not (tmp_path / "progress.png").exists()
