"""``RUN/progress.png``: how a run goes, drawn from its ``log.jsonl`` (after nnU-Net's).

Three panels against steps: the training loss (log scale when it spans a decade or more), the
validation PSNR and SSIM on twin axes, and the learning rate.  A line that is not a JSON object
(the cut-off last line of a killed run) is passed over, as the log's own reader on resume does;
a log that cannot be read or holds no training record yet is an error, and nothing is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import Ct2mriError
from ..evaluation.figures import new_figure, save_png

SIZE_PX = (900, 900)


def _number(value: Any) -> float:
    """A logged value as a float: non-finite ones are logged as strings ("nan", "inf")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_records(log_path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a ``log.jsonl``, skipping lines that are not one."""
    try:
        lines = log_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise Ct2mriError(f"{log_path}: cannot read the training log ({exc})") from None
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def _series(records: list[dict[str, Any]], kind: str, key: str) -> tuple[list[int], list[float]]:
    """Steps and finite values of ``key`` in the records of one kind."""
    points = [(r["step"], _number(r.get(key))) for r in records if r.get("kind") == kind]
    kept = [(s, v) for s, v in points if math.isfinite(v)]
    return [s for s, _ in kept], [v for _, v in kept]


def write_progress_plot(log_path: Path, png_path: Path) -> None:
    """Plot the run's loss, validation PSNR/SSIM and learning rate against steps into ``png_path``
    (atomically).  Raises Ct2mriError when the log cannot be read or has no training record."""
    records = read_records(Path(log_path))
    loss_steps, losses = _series(records, "train", "loss")
    if not loss_steps:
        raise Ct2mriError(f"{log_path}: no training record to plot yet")
    figure = new_figure(*SIZE_PX)
    loss_ax, val_ax, lr_ax = figure.subplots(3, 1, sharex=True)

    dots = "o" if len(loss_steps) == 1 else None  # a line of one point is not drawn
    loss_ax.plot(loss_steps, losses, color="tab:blue", linewidth=1.2, marker=dots, markersize=3, label="training loss")
    if min(losses) > 0 and max(losses) / min(losses) >= 10:
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(loc="upper right", fontsize=8)

    psnr_steps, psnr = _series(records, "val", "psnr")
    ssim_steps, ssim = _series(records, "val", "ssim")
    ssim_ax = val_ax.twinx()
    psnr_line = val_ax.plot(psnr_steps, psnr, "o-", color="tab:red", markersize=3, label="PSNR (dB)")
    ssim_line = ssim_ax.plot(ssim_steps, ssim, "s-", color="tab:green", markersize=3, label="SSIM")
    val_ax.set_ylabel("validation PSNR (dB)", color="tab:red")
    ssim_ax.set_ylabel("validation SSIM", color="tab:green")
    if psnr_steps or ssim_steps:
        val_ax.legend(handles=psnr_line + ssim_line, loc="lower right", fontsize=8)
    else:
        val_ax.text(0.5, 0.5, "no validation yet", transform=val_ax.transAxes, ha="center", va="center", color="0.4")
        val_ax.set_yticks([])
        ssim_ax.set_yticks([])

    lr_steps, lrs = _series(records, "train", "lr")
    lr_ax.plot(lr_steps, lrs, color="tab:purple", linewidth=1.2, marker=dots, markersize=3)
    lr_ax.set_ylabel("learning rate")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    lr_ax.set_xlabel("step")

    for ax in (loss_ax, val_ax, lr_ax):
        ax.grid(True, color="0.9")
    figure.suptitle(f"{Path(log_path).parent.name}: step {max(r['step'] for r in records)}", fontsize=12)
    figure.tight_layout()
    save_png(figure, png_path)
