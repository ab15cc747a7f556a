"""Can a CT choose its own style key?  A key predicted from the CT's CSF share, left one brain out.

    python benchmarks/bench_auto_key.py data/lobo_minus_s1_2mm data/s1_mixing_2mm \
        data/logo_projection_minus_s1_2mm data/s1_projection_2mm --csv docs/auto_key.csv

Run from the folder ``preprocess`` ran in (manifests record their sources relative to it). Each
case of the preprocessed folders (``ct2mri preprocess`` of ``synthesize`` pairs; a case's brain is
the ``source`` of its row in the pairs table the folder was made from) gives the share of its
brain that the CT shows as CSF (``evaluation.csf.ct_csf`` on the 2 mm model grid, the CT as
preprocessing clipped it to its window, which keeps every CSF value) and its true key. For each brain, the keys of the other brains are fitted per histogram bin against the CSF
share (least squares, straight line and parabola) and the fit's key at the held-out case's share
is scored against the case's true key by W1, beside the other brains' average key (the default
key a model ships). A predicted key is worth a ``--style auto`` only where it lies nearer the true
key than the average does, on brains that fitted nothing.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
from pathlib import Path

import numpy as np

from ct2mri_cli.evaluation.csf import ct_csf
from ct2mri_cli.style.key import HIST_SCALE, average_style_keys, key_distance, key_from_counts
from ct2mri_cli.training.data import load_case_volumes, open_dataset

FITS = {"line": 1, "parabola": 2}


@functools.cache
def brains_in(table: Path) -> dict[str, str]:
    """Case name -> source brain, from a ``synthesize`` pairs table."""
    with open(table, newline="") as handle:
        return {row["case"]: row["source"] for row in csv.DictReader(handle)}


def brain_of(entry: dict) -> str:
    """The source brain of a preprocessed case, read from the pairs table it was made from."""
    ct_path = Path(entry["source"]["ct"])
    return brains_in(ct_path.parent.parent / "pairs.csv")[ct_path.parent.name]


def read_cases(folders: list[str]) -> list[tuple[str, str, float, np.ndarray]]:
    """(case, brain, CT CSF share, key histogram) of every case (case: FOLDER/NAME)."""
    cases = []
    for folder in folders:
        manifest = open_dataset(folder)
        spacing = (manifest.preprocess.spacing_mm,) * 3
        low, high = manifest.preprocess.ct_window_hu
        for entry in manifest.cases:
            case = load_case_volumes(manifest, entry)
            hu = low + case.ct * (high - low)
            share = float(ct_csf(hu, case.mask, spacing).sum()) / float(case.mask.sum())
            cases.append((f"{folder}/{case.name}", brain_of(entry), share, case.key[0].numpy() / HIST_SCALE))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="preprocessed folders")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    cases = read_cases(args.folders)
    brains = sorted({brain for _, brain, _, _ in cases})
    rows = []
    for held in brains:
        fitted = [(share, hist) for _, brain, share, hist in cases if brain != held]
        shares = np.array([share for share, _ in fitted])
        hists = np.stack([hist for _, hist in fitted])
        average = average_style_keys(key_from_counts(hist) for hist in hists)  # the default key a model ships
        coefficients = {
            name: np.linalg.lstsq(np.vander(shares, degree + 1), hists, rcond=None)[0] for name, degree in FITS.items()
        }
        for name, brain, share, hist in cases:
            if brain != held:
                continue
            truth = key_from_counts(hist)
            row = {"case": name, "brain": held, "csf_share": round(share, 4), "average": key_distance(average, truth)}
            for name, degree in FITS.items():
                predicted = np.clip(np.vander([share], degree + 1) @ coefficients[name], 0.0, None)[0]
                row[name] = key_distance(key_from_counts(predicted), truth)
            rows.append(row)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    print("| held-out brain | cases | CT CSF share | W1 of the average key | line | parabola |")
    print("|---|---|---|---|---|---|")
    for held in brains:
        sel = [r for r in rows if r["brain"] == held]
        shares = [r["csf_share"] for r in sel]
        means = {k: np.mean([r[k] for r in sel]) for k in ("average", *FITS)}
        print(
            f"| {held} | {len(sel)} | {min(shares):.2f}-{max(shares):.2f} | {means['average']:.3f} | "
            f"{means['line']:.3f} | {means['parabola']:.3f} |"
        )
    print(json.dumps({k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("average", *FITS)}))


if __name__ == "__main__":
    main()
