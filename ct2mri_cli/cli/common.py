"""What every subcommand shares: consoles, verbosity, progress bars, overwrite checks."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import Ct2mriError
from ..io.atomic import check_folder_possible, same_file
from ..reporting import console, info, notice, settings, warn  # noqa: F401  (re-exported for subcommands)

stdout = Console(highlight=False)


def check_named_output(path: Path, inputs: list[Path]) -> None:
    """An output file the user named is replaced when it exists, as in ``translate``; it may not
    be one of the run's inputs or a folder (a missing folder is created on writing)."""
    check_folder_possible(path.parent)
    if path.is_dir():
        raise Ct2mriError(f"{path}: is a folder; name the output file")
    for source in inputs:
        if same_file(path, source):
            raise Ct2mriError(f"{path}: the output would overwrite the input {source}")


def progress_bar(unit: str = "", remaining: bool = False) -> Progress:
    """The rich progress bar of every subcommand: on stderr, silent with ``--quiet``, gone when done."""
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console, disable=settings.quiet, transient=True)
