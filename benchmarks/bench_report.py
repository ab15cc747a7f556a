"""The QC report over a large cohort: page size, build time and time to open in headless Chromium.

    python benchmarks/bench_report.py OUTDIR... -n 30 300 [--shards 2] [--slice-size 96]

Each OUTDIR is a ``ct2mri translate ... -o`` folder.  Their cases are dealt out again under new
names (``<case>_0007``...) into a cohort of N cases split over ``--shards`` status files, every
state kept (done, warnings, failed, pending); the volumes and pictures are hard links, so each
case of the cohort is read and tiled as a real one would be.  For each N: the report's size, the
seconds ``write_report`` takes, and in headless Chromium (Debian's chromium and
chromium-driver) the seconds until the page is parsed and its table drawn, and until a case's
viewer shows its first slices.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ct2mri_cli.inference.status import StatusFile
from ct2mri_cli.reports import collect, write_report
from ct2mri_cli.reports.collect import sidecar_of
from ct2mri_cli.shards import Shard
from tests.browser import browser_missing, headless_chromium


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


def replicate(sources: list[Path], folder: Path, count: int, shards: int) -> None:
    """``count`` cases dealt from the cases of ``sources`` under new names, over ``shards`` status files."""
    records = [record for source in sources for record in collect(source).cases]
    files = [StatusFile(folder, Shard(k, shards)) for k in range(shards)]
    for i in range(count):
        record = records[i % len(records)]
        case = f"{record.case}_{i:04d}"
        output = folder / f"{case}_synT1.nii.gz"
        if record.output is not None:
            _link(record.output, output)
            sidecar = dict(record.sidecar, output=str(output))
            sidecar_of(output).write_text(json.dumps(sidecar, indent=2))
        if record.qc_png is not None:
            _link(record.qc_png, folder / f"{case}_qc.png")
        files[i % shards].record(
            {
                "case": case,
                "input": str(record.ct) if record.ct else None,
                "output": str(output),
                "state": record.state,
                "checks": record.flagged,
                "seconds": record.seconds,
                "error": record.error,
            }
        )


def open_seconds(page: Path) -> tuple[float, float, float]:
    """(seconds to the drawn table, the browser's own DOMContentLoaded time, seconds to a case's
    first slices after its name is clicked) in a fresh headless Chromium."""
    from selenium.webdriver.common.by import By

    driver = headless_chromium()
    try:
        started = time.perf_counter()
        driver.get(page.as_uri())
        while not driver.execute_script("return document.body.dataset.ready"):
            time.sleep(0.01)
        ready = time.perf_counter() - started
        parsed = driver.execute_script(
            "const t = performance.timing; return (t.domContentLoadedEventEnd - t.navigationStart) / 1000"
        )
        button = driver.find_element(By.CSS_SELECTOR, 'tr.row[data-category="done"] button.case-name')
        started = time.perf_counter()
        button.click()
        while not driver.execute_script(
            "return [...document.querySelectorAll('.viewer canvas')].length > 0 && "
            "[...document.querySelectorAll('.viewer canvas')].every(c => c.dataset.slice)"
        ):
            time.sleep(0.01)
        viewer = time.perf_counter() - started
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        if errors:
            raise SystemExit(f"console errors: {errors}")
        return ready, parsed, viewer
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, nargs="+", help="ct2mri translate output folders")
    parser.add_argument("-n", type=int, nargs="+", default=[30, 300], help="cohort sizes")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--slice-size", type=int, default=96)
    args = parser.parse_args()
    missing = browser_missing()
    if missing:
        raise SystemExit(missing)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"cases from {', '.join(map(str, args.sources))}; slice size {args.slice_size}"
    )
    print(
        "| cases | page (MB) | MB per finished case | build (s) | open: table drawn (s) | DOMContentLoaded (s) | first viewer (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for count in args.n:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "cohort"
            folder.mkdir()
            replicate(args.sources, folder, count, args.shards)
            result = write_report(folder, Path(tmp) / "report.html", slice_size=args.slice_size)
            ready, parsed, viewer = open_seconds(result.path)
            done = result.counts["done"]
            print(
                f"| {count} ({done} done, {result.counts['warnings']} with warnings, {result.counts['failed']} failed, "
                f"{result.counts['pending']} pending) | {result.size_bytes / 1e6:.1f} | {result.size_bytes / 1e6 / max(done, 1):.2f} "
                f"| {result.seconds:.1f} | {ready:.2f} | {parsed:.2f} | {viewer:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
