"""Time to generate synthetic CT/T1 pairs (``ct2mri synthesize``) on this machine.

Prints one table: preparing each source's anatomy (once per process), then per pair the
synthesis and the writing of the three NIfTI files, and the total for N pairs.

Usage: python benchmarks/bench_synthesis.py [-n 10] [--spacing 1.0] [--source both]
Target: 10 pairs at 1 mm in under 2 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ct2mri_cli.data.synthesis import case_seed, generate_pair, prepare_anatomy
from ct2mri_cli.data.synthetic_set import (
    sources_for,
    synthetic_case_name,
    write_synthetic_case,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--spacing", type=float, default=None, help="mm (default: the sources' 1 mm grids)")
    parser.add_argument("--source", default="both", choices=["mni", "colin27", "both"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows: list[tuple[str, str, float, float]] = []
    total_start = time.perf_counter()
    plan = sources_for(args.source, args.n)
    for name in sorted(set(plan)):
        t0 = time.perf_counter()
        prepare_anatomy(name)
        rows.append((f"prepare {name}", "", time.perf_counter() - t0, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(plan):
            t0 = time.perf_counter()
            pair = generate_pair(name, case_seed(args.seed, i), args.spacing)
            t1 = time.perf_counter()
            write_synthetic_case(Path(tmp), synthetic_case_name(i), pair)
            rows.append((synthetic_case_name(i), name, t1 - t0, time.perf_counter() - t1))
    total = time.perf_counter() - total_start

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"cores: {os.cpu_count()}, ITK threads: {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}, "
        f"load average at the end: {load:.1f}, spacing: {args.spacing or 1.0:g} mm"
    )
    print(f"{'step':<18}{'source':<10}{'synthesis s':>12}{'write s':>10}")
    for step, source, synth, write in rows:
        print(f"{step:<18}{source:<10}{synth:>12.2f}{(f'{write:.2f}' if write else ''):>10}")
    pairs = [r for r in rows if r[1]]
    mean_pair = sum(r[2] + r[3] for r in pairs) / max(len(pairs), 1)
    print(f"{'mean per pair':<28}{mean_pair:>12.2f}")
    print(f"{'total for ' + str(args.n) + ' pairs':<28}{total:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
