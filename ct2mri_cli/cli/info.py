"""``ct2mri info``: what a weights (or style key) file holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from ..errors import Ct2mriError
from . import common


def info(
    path: Path = typer.Argument(..., help="A ct2mri weights file (.safetensors) or a style key file."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON on stdout."),
) -> None:
    """Print a weights file's format, network, bridge, preprocessing, sampling and provenance."""
    from ..style.key import KEY_FORMAT, load_style_key
    from ..weights import file_sha256, read_metadata

    if _format_of(path) == KEY_FORMAT:
        key, metadata = load_style_key(path)
        summary = {"file": str(path), "kind": "style key", "sha256": file_sha256(path), "metadata": metadata,
                   "histogram_mass": round(float(key[0].sum()), 6)}
    else:
        metadata = read_metadata(path)
        decoded = {}
        for name, value in metadata.items():
            if name in ("format", "format_version", "tensors_sha256"):
                continue
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise Ct2mriError(f"{path}: the metadata entry {name!r} is not valid JSON ({exc.msg} at character {exc.pos}); "
                                  "the file is damaged") from None
        style = decoded.pop("default_style_key")
        summary = {
            "file": str(path),
            "kind": "weights",
            "format": f"{metadata['format']} v{metadata['format_version']}",
            "sha256": file_sha256(path),
            "parameters": _parameter_count(path),
            "tensors_digest": _digest_state(path, metadata),
            **decoded,
            "default_style_key": f"3x{len(style[0])}",
        }
    damaged = str(summary.get("tensors_digest", "")).startswith("MISMATCH")
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


def _digest_state(path: Path, metadata: dict[str, str]) -> str:
    """Whether the tensors match the digest the file records: matches, not recorded, or MISMATCH."""
    from safetensors.torch import load_file

    from ..weights import check_tensors

    try:
        return check_tensors(path, metadata, load_file(str(path)))
    except Ct2mriError:
        return "MISMATCH: the file is damaged"
    except Exception as exc:  # unreadable tensor data
        return f"MISMATCH: the tensors cannot be read ({type(exc).__name__})"


def _format_of(path: Path) -> str | None:
    """The ``format`` metadata entry, or None when the file is not a readable safetensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format")
    except Exception:  # unreadable files get their message from read_metadata
        return None


def _parameter_count(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():
            n = 1
            for dim in handle.get_slice(name).get_shape():
                n *= dim
            total += n
    return total
