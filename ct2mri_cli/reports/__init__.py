"""The QC report of a translation output folder: one self-contained HTML page over every case.

``write_report(outdir, html_path)`` reads the folder's status files and sidecars
(:mod:`.collect`), tiles each case's slices (:mod:`.views`) and writes the page (:mod:`.page`),
atomically.  Ratings saved from an earlier page (:mod:`.ratings`) are loaded back into it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import Ct2mriError
from ..io.atomic import atomic_output
from .collect import CaseRecord, Cohort, collect
from .page import write_page
from .ratings import read_ratings
from .views import SLICE_SIZE

REPORT_NAME = "report.html"
RATINGS_NAME = "ratings.csv"
MIN_SLICE_SIZE, MAX_SLICE_SIZE = 16, 512  # a sprite of a few hundred slices stays within WebP's 16383 pixels

__all__ = ["REPORT_NAME", "ReportResult", "collect", "default_report_path", "write_report"]


@dataclass
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    size_bytes: int
    counts: dict[str, int]
    missing_shards: list[str]
    viewers: int
    ratings: Path | None
    rated: int
    unknown_rated: list[str]
    seconds: float


def default_report_path(outdir: Path) -> Path:
    return Path(outdir) / REPORT_NAME


def _report_path(outdir: Path, html_path: Path | None, force: bool) -> Path:
    if html_path is None:
        path = default_report_path(outdir)
        if path.exists() and not force:
            raise Ct2mriError(f"{path} exists; name the report with -o to replace it, or use --force")
        return path
    path = Path(html_path)
    if path.is_dir():
        raise Ct2mriError(f"{path}: is a folder; name the report file (.html)")
    if path.suffix.lower() not in (".html", ".htm"):
        raise Ct2mriError(f"{path}: the report is an HTML file; name it .html")
    return path


def write_report(
    outdir: Path,
    html_path: Path | None = None,
    *,
    ratings: Path | None = None,
    force: bool = False,
    slice_size: int = SLICE_SIZE,
    on_case: Callable[[CaseRecord], None] | None = None,
    cohort: Cohort | None = None,
) -> ReportResult:
    """Write the QC report of the translation output folder ``outdir`` to ``html_path``.

    Without ``html_path`` the report is ``outdir/report.html``, which an existing file blocks
    unless ``force``; a path named is replaced.  Ratings come from ``ratings``, else from a
    ``ratings.csv`` beside the report when there is one (ratings of cases the folder does not
    hold are kept in the page and listed in the result).  ``on_case`` is called as each case is
    written; ``cohort`` is the folder as :func:`collect` read it, when the caller has it already.
    A folder without status files, or an unreadable ratings file, is a one-line
    :class:`Ct2mriError`."""
    started = time.perf_counter()
    outdir = Path(outdir)
    cohort = cohort if cohort is not None else collect(outdir)
    path = _report_path(outdir, html_path, force)
    if not MIN_SLICE_SIZE <= slice_size <= MAX_SLICE_SIZE:
        raise Ct2mriError(f"--slice-size {slice_size}: from {MIN_SLICE_SIZE} to {MAX_SLICE_SIZE} pixels")
    if ratings is None and (path.parent / RATINGS_NAME).is_file():
        ratings = path.parent / RATINGS_NAME
    loaded = read_ratings(ratings) if ratings is not None else {}
    unknown = sorted(set(loaded) - {c.case for c in cohort.cases})
    with atomic_output(path) as tmp:
        with tmp.open("w", encoding="utf-8") as out:
            viewers = write_page(
                cohort,
                out,
                ratings=loaded,
                ratings_time=ratings.stat().st_mtime if ratings else 0.0,
                ratings_file=RATINGS_NAME,
                size=slice_size,
                on_case=on_case,
            )
    return ReportResult(
        path,
        path.stat().st_size,
        cohort.counts,
        cohort.missing_shards,
        viewers,
        ratings,
        len(loaded) - len(unknown),
        unknown,
        time.perf_counter() - started,
    )
