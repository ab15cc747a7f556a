"""The run folder: its fixed layout, and the checks done before anything is written there.

RUN_DIR/config.json            effective configuration (valid input for --config)
RUN_DIR/log.jsonl              one JSON record per logged step, validation and event
RUN_DIR/checkpoints/last.pt    the newest checkpoint (+ step_XXXXXXXX.pt periodic ones)
RUN_DIR/model.safetensors      final EMA weights for ``ct2mri translate``
RUN_DIR/best.safetensors       EMA weights with the best validation PSNR
RUN_DIR/progress.png           loss, validation scores and learning rate against steps
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import Ct2mriError
from ..io.atomic import atomic_output, check_folder_possible, ensure_folder
from .checkpoint import LAST, checkpoint_files
from .config import TrainConfig


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def progress(self) -> Path:
        return self.root / "progress.png"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def best(self) -> Path:
        return self.root / "best.safetensors"

    @property
    def windows(self) -> Path:
        """Where ``memory_map`` puts the training windows (a folder per process, rewritten at each start)."""
        return self.root / "windows"

    def outputs(self) -> list[Path]:
        """Files of a previous run that exist in the folder."""
        fixed = [self.config, self.log, self.model, self.best]
        return [p for p in fixed if p.exists()] + checkpoint_files(self.checkpoints)


def check_run_dir(layout: RunLayout, resume: bool, force: bool) -> None:
    """Refuse unsafe starts before any work: overwriting without ``--force``, resuming nothing."""
    root = layout.root
    if resume and force:
        raise Ct2mriError("--resume and --force exclude each other (continue a run, or start it over)")
    if root.exists() and not root.is_dir():
        raise Ct2mriError(f"{root}: exists and is not a folder")
    check_folder_possible(root)
    if resume:
        if not layout.last.is_file():
            raise Ct2mriError(f"{layout.last}: checkpoint not found, nothing to resume")
        return
    existing = layout.outputs() if root.is_dir() else []
    if existing and not force:
        raise Ct2mriError(f"{root}: holds a training run (use --resume to continue it or --force to start over)")


def prepare_run_dir(layout: RunLayout, force: bool) -> None:
    """Create the folders; with ``force`` remove the previous run's files (and only those)."""
    ensure_folder(layout.checkpoints)
    if force:
        for path in layout.outputs():
            path.unlink()


def write_config(layout: RunLayout, config: TrainConfig) -> None:
    with atomic_output(layout.config) as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
