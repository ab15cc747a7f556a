"""CT brain masks against the true intracranial masks of synthetic heads: as made, on thick slices and tilted.

    python benchmarks/bench_brainmask.py DATA_DIR [--cases N] [--csv docs/brainmask.csv]

DATA_DIR is a ``ct2mri synthesize`` folder (``pairs.csv``; whole heads with face and neck from
every source).  Each case is scored three ways: as made (1 mm), with its slices averaged to
5 mm (a thick-slice reconstruction; the true mask taken at the same 5 mm slabs by majority), and
resampled onto a grid pitched by 20 degrees (trilinear CT, nearest-neighbour truth).  The mask is
the automatic one of ``translate`` (after the HU-scale check).  Prints a table and writes CSV:
Dice, volume error, voxels outside the truth as a share of the true volume, and seconds.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np

from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.preprocessing.brainmask import extract_brain_ct
from ct2mri_cli.preprocessing.checks import check_hu_scale

THICK_MM = 5.0
PITCH_DEGREES = 20.0


def thick(ct: Volume, truth: np.ndarray) -> tuple[Volume, np.ndarray]:
    """Slices averaged into slabs of ``THICK_MM`` along the last (inferior-superior) axis."""
    n = int(round(THICK_MM / ct.spacing[2]))
    z = (ct.shape[2] // n) * n
    data = np.asarray(ct.data, np.float32)[:, :, :z].reshape(ct.shape[0], ct.shape[1], -1, n).mean(axis=3)
    mask = truth[:, :, :z].reshape(truth.shape[0], truth.shape[1], -1, n).mean(axis=3) >= 0.5
    affine = np.asarray(ct.affine, float) @ np.diag([1.0, 1.0, n, 1.0])
    affine[:3, 3] += np.asarray(ct.affine)[:3, 2] * (n - 1) / 2.0
    return Volume(data=data, affine=affine, description=f"{ct.name} ({THICK_MM:g} mm)"), mask


def pitched(ct: Volume, truth: np.ndarray) -> tuple[Volume, np.ndarray]:
    """The scan resampled onto its own grid turned by ``PITCH_DEGREES`` about left-right."""
    from ct2mri_cli.io.images import resample_onto_grid, sitk_from_array

    angle = np.radians(PITCH_DEGREES)
    turn = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.asarray(ct.affine, float).copy()
    centre = affine[:3, :3] @ (np.array(ct.shape) - 1) / 2.0 + affine[:3, 3]
    affine[:3, :3] = turn @ affine[:3, :3]
    affine[:3, 3] = centre - affine[:3, :3] @ (np.array(ct.shape) - 1) / 2.0

    def onto(array: np.ndarray, interpolation: str, fill: float) -> np.ndarray:
        return resample_onto_grid(sitk_from_array(array, ct.affine), ct.shape, affine, None, interpolation, fill)

    data = onto(np.asarray(ct.data, np.float32), "linear", -1024.0)
    mask = onto(truth.astype(np.float32), "nearest", 0.0) > 0.5
    return Volume(data=data, affine=affine, description=f"{ct.name} (pitched)"), mask


def read_pairs(data: Path, cases: int | None) -> list[dict[str, str]]:
    """The first ``cases`` rows of a synthesize folder's ``pairs.csv`` (all when None)."""
    with open(data / "pairs.csv") as handle:
        return list(csv.DictReader(handle))[:cases]


def write_rows(path: Path, rows: list[dict]) -> None:
    """Rows as CSV, floats to 4 decimals."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def score(ct: Volume, truth: np.ndarray) -> dict[str, float]:
    start = time.perf_counter()
    ct, _ = check_hu_scale(ct)
    mask = extract_brain_ct(ct)
    seconds = time.perf_counter() - start
    true_n = float(truth.sum())
    return {
        "dice": 2.0 * float((mask & truth).sum()) / (float(mask.sum()) + true_n),
        "volume_error_pct": 100.0 * (float(mask.sum()) / true_n - 1.0),
        "outside_truth_pct": 100.0 * float((mask & ~truth).sum()) / true_n,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--variants", default="as made,thick,pitched")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    pairs = read_pairs(args.data, args.cases)
    variants = {"as made": lambda c, t: (c, t), "thick": thick, "pitched": pitched}
    rows = []
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}")
    print(f"{'case':10s} {'source':10s} {'variant':8s} {'dice':>6s} {'vol %':>7s} {'out %':>6s} {'s':>5s}")
    for pair in pairs:
        ct = read_volume(args.data / pair["ct"])
        truth = np.asarray(read_volume(args.data / pair["mask"]).data) > 0
        for name in args.variants.split(","):
            row = {"case": pair["case"], "source": pair["source"], "variant": name, **score(*variants[name](ct, truth))}
            rows.append(row)
            print(
                f"{row['case']:10s} {row['source']:10s} {name:8s} {row['dice']:6.3f} {row['volume_error_pct']:+7.1f} "
                f"{row['outside_truth_pct']:6.1f} {row['seconds']:5.1f}",
                flush=True,
            )
    for name in args.variants.split(","):
        sel = [r for r in rows if r["variant"] == name]
        print(
            f"{name}: {len(sel)} cases, Dice min {min(r['dice'] for r in sel):.3f} mean {np.mean([r['dice'] for r in sel]):.3f}, "
            f"|volume error| max {max(abs(r['volume_error_pct']) for r in sel):.1f} %"
        )
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
