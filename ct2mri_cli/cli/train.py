"""``ct2mri train``: train (or continue training) a model on a ``ct2mri preprocess`` folder."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common


def train(
    data_dir: Path = typer.Argument(..., help="Folder written by 'ct2mri preprocess' (holds manifest.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="Run folder: config, log, checkpoints, weights."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Settings file (.toml or .json)."),
    preset: str | None = typer.Option(
        None, "--preset", help="Network size: released, small, demo or tiny.", show_default="small"
    ),
    steps: int | None = typer.Option(None, "--steps", help="Total optimiser steps of the run.", show_default="10000"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Windows per step and process.", show_default="8"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in the folder from checkpoints/last.pt."),
    init: Path | None = typer.Option(
        None,
        "--init",
        help="Start from a weights file's network (fine-tune the bundled model, or continue a staged "
        "training from committed weights); its network settings are taken unless --preset or --set network.* say otherwise.",
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a setting: key=value (e.g. lr=2e-4, network.base_channels=48); repeatable."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps.", show_default="auto"),
    force: bool = typer.Option(False, "--force", help="Start over in a folder that holds a previous run."),
    no_validation: bool = typer.Option(
        False,
        "--no-validation",
        help="Skip validation (the same as --set val_every=0); held-out subjects stay held out.",
    ),
) -> None:
    """Train the multi-slice Brownian-bridge model; torchrun launches distributed (DDP) training.

    Settings come from the defaults (with --init: the weights' network), then --config, then
    --preset/--steps/--batch-size/--device, then --set, later ones winning.  With --resume the
    run's saved settings are the starting point.
    """
    from ..training.config import settings_from_options
    from ..training.loop import train as run_training
    from ..training.rundir import RunLayout

    settings = settings_from_options(
        data_dir,
        config_file=config,
        init=init,
        preset=preset,
        steps=steps,
        batch_size=batch_size,
        device=device,
        overrides=overrides or (),
        no_validation=no_validation,
        resumed_config=RunLayout(output).config if resume else None,
    )
    run_training(settings, output, resume=resume, force=force, quiet=common.settings.quiet, console=common.console)
