"""What a run shows and records: the progress bar, the JSON-lines log and step-phase timings."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PHASES = ("data", "network", "optimizer", "ema", "log")


class PhaseTimer:
    """Wall-clock time per phase of a training step.

    On CUDA the device is synchronised at each mark so a phase is charged with its own kernels
    (the price is a little lost overlap between phases).
    """

    def __init__(self, device: torch.device) -> None:
        self.sync = device.type == "cuda"
        self.device = device
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.last = time.perf_counter()

    def restart(self) -> None:
        self.last = time.perf_counter()

    def mark(self, phase: str) -> None:
        """Charge the time since the previous mark to ``phase``."""
        if self.sync:
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.totals[phase] += now - self.last
        self.last = now

    def take(self) -> tuple[float, dict[str, float]]:
        """(total seconds, fraction per phase) since the last call; then reset."""
        total = sum(self.totals.values())
        fractions = {k: (v / total if total > 0 else 0.0) for k, v in self.totals.items()}
        self.totals = dict.fromkeys(PHASES, 0.0)
        return total, fractions


class JsonLog:
    """Appends one JSON object per line to ``log.jsonl``; a no-op when disabled (ranks > 0)."""

    def __init__(self, path: Path, enabled: bool = True, keep_until_step: int | None = None) -> None:
        self.path = path
        self.enabled = enabled
        if enabled and keep_until_step is not None and path.exists():
            _truncate_after(path, keep_until_step)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_finite(record), separators=(",", ":")) + "\n")


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _truncate_after(path: Path, step: int) -> None:
    """Drop records past ``step`` (logged after the checkpoint a run resumes from)."""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
            kept.append(line)
    path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``log.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class ProgressDisplay:
    """A rich progress bar: step, loss, samples/s, elapsed time and ETA; during a validation a
    second bar counts the held-out slices translated."""

    def __init__(self, console: Console, total: int, completed: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.enabled = enabled
        self.loss = "-"
        self.speed = "-"
        self.task = self.progress.add_task("train", total=total, completed=completed, detail=self._detail())
        self.validation_task: TaskID | None = None

    def _detail(self) -> str:
        return f"loss {self.loss}  {self.speed} samples/s"

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, step: int, loss: float | None = None, speed: float | None = None) -> None:
        if loss is not None:
            self.loss = f"{loss:.4f}"
        if speed is not None:
            self.speed = f"{speed:.1f}"
        self.progress.update(self.task, completed=step, detail=self._detail())

    def start_validation(self, message: str) -> None:
        """Say what is validated and show a bar over its slices (removed again at its end)."""
        if self.enabled:
            self.progress.console.print(message)
        self.validation_task = self.progress.add_task("validate", total=None, detail="slices")

    def validation_progress(self, done: int, total: int) -> None:
        if self.validation_task is not None:
            self.progress.update(self.validation_task, completed=done, total=total)

    def end_validation(self) -> None:
        if self.validation_task is not None:
            self.progress.remove_task(self.validation_task)
            self.validation_task = None

    def print(self, message: str) -> None:
        self.progress.console.print(message)


class ReadingProgress:
    """A transient bar while the data folder is read; ``update(done, total)`` is the callback."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]reading[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cases"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
            transient=True,
        )
        self.task = self.progress.add_task("read", total=None)

    def __enter__(self) -> ReadingProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)
