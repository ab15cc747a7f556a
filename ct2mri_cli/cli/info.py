"""``ct2mri info``: what a weights (or style key) file holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from . import common


def info(
    path: Path = typer.Argument(..., help="A ct2mri weights file (.safetensors) or a style key file."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON on stdout."),
) -> None:
    """Print a weights file's format, network, bridge, preprocessing, sampling and provenance."""
    from ..weights import DIGEST_MISMATCH, file_summary

    summary = file_summary(path)
    damaged = str(summary.get("tensors_digest", "")).startswith(DIGEST_MISMATCH)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_table(path, summary)
    if damaged:
        common.console.print(f"[red]error:[/red] {path}: {summary['tensors_digest']}", soft_wrap=True)
        raise typer.Exit(code=1)


def _print_table(path: Path, summary: dict) -> None:
    table = Table(title=str(path), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in summary.items():
        if isinstance(value, dict):
            value = "\n".join(f"{k} = {v}" for k, v in value.items())
        table.add_row(name, str(value))
    common.stdout.print(table)
