"""``ct2mri train``: train (or continue training) a model on a ``ct2mri preprocess`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import Ct2mriError
from . import common


def train(
    data_dir: Path = typer.Argument(..., help="Folder written by 'ct2mri preprocess' (holds manifest.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder: config, log, checkpoints, weights."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Settings file (.toml or .json)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Network size: released, small, demo or tiny.", show_default="small"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimiser steps of the run.", show_default="10000"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per step and process.", show_default="8"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the folder from checkpoints/last.pt."),
    init: Optional[Path] = typer.Option(
        None, "--init", help="Start from a weights file's network (fine-tune the bundled model, or continue a staged "
        "training from committed weights); its network settings are taken unless --preset or --set network.* say otherwise."),
    overrides: Optional[List[str]] = typer.Option(
        None, "--set", help="Override a setting: key=value (e.g. lr=2e-4, network.base_channels=48); repeatable."
    ),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps.", show_default="auto"),
    force: bool = typer.Option(False, "--force", help="Start over in a folder that holds a previous run."),
    no_validation: bool = typer.Option(
        False, "--no-validation", help="Skip validation (the same as --set val_every=0); held-out subjects stay held out."),
) -> None:
    """Train the multi-slice Brownian-bridge model; torchrun launches distributed (DDP) training.

    Settings come from the defaults (with --init: the weights' network), then --config, then
    --preset/--steps/--batch-size/--device, then --set, later ones winning.  With --resume the
    run's saved settings are the starting point.
    """
    from ..training import config as cfg
    from ..training.loop import train as run_training
    from ..training.rundir import RunLayout

    requested: dict[str, Any] = cfg.read_config_file(config) if config is not None else {}
    if init is not None:
        if not init.is_file():
            raise Ct2mriError(f"--init {init}: no such file")
        own_network = (preset is not None or "network" in requested or "preset" in requested
                       or any(o.startswith(("network.", "preset=")) for o in overrides or []))
        requested = {**({} if own_network else cfg.network_settings_of(init)), **requested, "init": str(init)}
    for key, value in (("preset", preset), ("steps", steps), ("batch_size", batch_size), ("device", device)):
        if value is not None:
            requested[key] = value
    requested["data_dir"] = str(data_dir)
    if no_validation:
        requested["val_every"] = 0
    requested = cfg.apply_overrides(requested, overrides or [])
    if resume:
        saved_file = RunLayout(output).config
        base = cfg.read_config_file(saved_file) if saved_file.is_file() else {}
        requested = {**base, **requested}
    settings = cfg.config_from_dict(requested, str(config) if config is not None else "configuration")
    run_training(settings, output, resume=resume, force=force, quiet=common.settings.quiet, console=common.console)
