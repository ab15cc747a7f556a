"""``ct2mri report``: one self-contained HTML page over a translation output folder."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common


def report(
    outdir: Path = typer.Argument(
        ...,
        metavar="OUTDIR",
        help="A translation output folder (ct2mri translate ... -o OUTDIR), whole, partial or sharded.",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="The HTML file to write (replaced if it exists).",
        show_default="OUTDIR/report.html",
    ),
    ratings: Path | None = typer.Option(
        None,
        "--ratings",
        help="Ratings saved from a report (CSV: case, rating, note) to load.",
        show_default="ratings.csv beside the report, if there is one",
    ),
    slice_size: int = typer.Option(96, "--slice-size", help="Largest side of a slice in the viewer, in pixels."),
    force: bool = typer.Option(False, "--force", help="Replace OUTDIR/report.html when no -o is given."),
) -> None:
    """Write an HTML QC report: every case's checks, pictures and slices, with ratings saved as CSV."""
    from ..reports import collect, write_report

    cohort = collect(outdir)
    if output is not None:
        common.check_named_output(output, [])
    with common.progress_bar("cases") as bar:
        task = bar.add_task("report", total=len(cohort.cases))
        result = write_report(
            outdir,
            output,
            ratings=ratings,
            force=force,
            slice_size=slice_size,
            cohort=cohort,
            on_case=lambda _record: bar.advance(task),
        )
    if result.ratings is not None:
        common.info(f"ratings of {result.rated} cases loaded from {result.ratings}")
    if result.unknown_rated:
        common.warn(
            f"{result.ratings}: {len(result.unknown_rated)} rated cases are not in {outdir} "
            f"(first: {result.unknown_rated[0]}); kept in the page's ratings"
        )
    for label in result.missing_shards:
        common.warn(f"{outdir}: shard {label} wrote no status file (not started?)")
    n = result.counts
    common.stdout.print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {n['cases']} cases: {n['done']} done "
        f"({n['warnings']} with warnings), {n['failed']} failed, {n['pending']} pending; "
        f"{result.seconds:.1f} s)",
        soft_wrap=True,
    )
