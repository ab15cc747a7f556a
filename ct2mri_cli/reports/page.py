"""The report as one self-contained HTML file: styles, script, data and images all inline.

The page is written as it is made, case by case, so a cohort's images never sit in memory
together.  Images go into inert ``<script type="text/plain">`` blocks that the browser only
tokenises; the page's script turns a case's blocks into images when its viewer is opened.  The
table's data follows them as one JSON block, read when the document has been parsed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import IO, Any

from .. import __version__
from .collect import CaseRecord, Cohort
from .views import SLICE_SIZE, CaseViews, case_views

IMAGES_MARK = "${images}"


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_html(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c").replace("&", "\\u0026")


def _image_block(block_id: str, mime: str, data: bytes) -> str:
    return (
        f'<script type="text/plain" id="{block_id}" data-mime="{mime}">'
        f"{base64.b64encode(data).decode('ascii')}</script>\n"
    )


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities, at any depth, as None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def case_entry(record: CaseRecord) -> dict[str, Any]:
    """The page's data about one case (no images)."""
    sampler = record.sidecar.get("sampler")
    return {
        "case": record.case,
        "state": record.state,
        "category": record.category,
        "shard": record.shard,
        "checks": {
            str(c.get("name")): {k: c.get(k) for k in ("value", "threshold", "verdict", "message")}
            for c in record.checks
        },
        "pose": record.pose,
        "brain_ml": record.brain_volume_ml,
        "style_distance": record.style_distance,
        "trust": record.trust,
        "seconds": record.seconds,
        "error": record.error,
        "notes": record.notes,
        "input": str(record.ct) if record.ct else None,
        "output": str(record.output) if record.output else None,
        "style": record.sidecar.get("style_source"),
        "sampler": sampler if isinstance(sampler, dict) else None,
        "qc": False,
        "views": {},
    }


def _thresholds(cohort: Cohort) -> dict[str, str | None]:
    """Each check's threshold when every case states the same one (shown in the table's header)."""
    found: dict[str, set[str]] = {}
    for record in cohort.cases:
        for check in record.checks:
            if check.get("threshold") is not None:
                found.setdefault(str(check.get("name")), set()).add(str(check["threshold"]))
    return {name: (next(iter(values)) if len(values) == 1 else None) for name, values in found.items()}


def report_key(folder: Path) -> str:
    """Names the report's ratings in the browser's storage: the same output folder, the same key."""
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]


def _write_case_images(out: IO[str], index: int, record: CaseRecord, entry: dict[str, Any], size: int) -> bool:
    if record.qc_png is not None:
        out.write(_image_block(f"img-{index}-qc", "image/png", record.qc_png.read_bytes()))
        entry["qc"] = True
    views: CaseViews = case_views(record, size) if record.output is not None else CaseViews()
    for role, stack in views.stacks.items():
        out.write(_image_block(f"img-{index}-{role}", stack.mime, stack.data))
        entry["views"][role] = {**stack.meta(), "caption": views.captions[role]}
    entry["notes"] = [*entry["notes"], *views.notes]
    return bool(views.stacks)


def write_page(
    cohort: Cohort,
    out: IO[str],
    *,
    ratings: dict[str, dict[str, str]] | None = None,
    ratings_time: float = 0.0,
    ratings_file: str = "ratings.csv",
    size: int = SLICE_SIZE,
    on_case: Callable[[CaseRecord], None] | None = None,
) -> int:
    """Write the report of ``cohort`` to ``out``; returns how many cases got a slice viewer.

    ``ratings`` (from a saved CSV, as of ``ratings_time``, seconds since the epoch) start the
    page's ratings; ratings the reader makes later, kept in the browser, win over older ones."""
    title = f"ct2mri QC report: {cohort.folder.resolve().name}"
    head, tail = _asset("report.html").split(IMAGES_MARK)
    fields = {"title": html.escape(title), "css": _asset("report.css")}
    out.write(Template(head).substitute(fields))
    entries, viewers = [], 0
    for index, record in enumerate(cohort.cases):
        entry = case_entry(record)
        viewers += _write_case_images(out, index, record, entry, size)
        entries.append(entry)
        if on_case is not None:
            on_case(record)
    data = {
        "title": title,
        "folder": str(cohort.folder.resolve()),
        "key": report_key(cohort.folder),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "version": __version__,
        "counts": cohort.counts,
        "missing_shards": cohort.missing_shards,
        "shard_counts": cohort.shard_counts,
        "checks": cohort.check_names,
        "thresholds": _thresholds(cohort),
        "cases": entries,
        "ratings": ratings or {},
        "ratings_time": int(ratings_time * 1000),
        "ratings_file": ratings_file,
    }
    out.write(Template(tail).substitute(data=_json_for_html(_finite(data)), js=_asset("report.js")))
    return viewers
