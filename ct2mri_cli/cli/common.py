"""What every subcommand shares: the console, verbosity and device selection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import Ct2mriError


@dataclass
class Settings:
    verbose: bool = False
    quiet: bool = False


settings = Settings()
console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def info(message: str) -> None:
    """Print a status line unless ``--quiet``."""
    if not settings.quiet:
        console.print(message)


def warn(message: str) -> None:
    """Print a warning; warnings are shown even with ``--quiet``."""
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def check_can_write(path: Path, force: bool) -> None:
    """Refuse to overwrite an existing file unless ``force``; require the folder to exist."""
    if not path.parent.is_dir():
        raise Ct2mriError(f"{path}: the folder {path.parent} does not exist")
    if path.exists() and not force:
        raise Ct2mriError(f"{path} exists (use --force to overwrite)")


def progress_bar(unit: str = "", remaining: bool = False) -> Progress:
    """The rich progress bar of every subcommand: on stderr, silent with ``--quiet``, gone when done."""
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, disable=settings.quiet, transient=True)
