"""How well the trust map finds the errors: brains the model never trained on, through ``translate``.

    python benchmarks/bench_trust.py DATA_DIR [--cases N] [--fitted 8] [--csv docs/trust.csv]

DATA_DIR is a ``ct2mri synthesize`` folder of a brain the bundled model never saw (SRI24).  Each
CT is translated by the bundled model (default sampler) with the key of the case's own T1 over its
brain (the style a user gives with ``--style``), and the error |output - T1| is taken on the CT's
grid inside the true brain and the output's mask, the T1 robust min-max normalised there.  Per
case: the mean error in the tenth of brain voxels the map trusts least against the half it trusts
most, the area under the ROC curve of the map for voxels whose error exceeds 0.2, the map's mean
and the case's PSNR; across cases, Spearman's rank correlation of the map's mean with the PSNR;
and the seconds the map costs.  ``--fitted N``: the first N cases were used to fit the map's
coefficients; the summary is given for them, for the rest, and for all.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from bench_brainmask import read_pairs, write_rows  # benchmarks/ is on the path when run as a script

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.evaluation.metrics import psnr
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.inference.trust import UNSURE_ERROR
from ct2mri_cli.io.volumes import read_volume
from ct2mri_cli.preprocessing.intensity import normalize_mri
from ct2mri_cli.style.sources import mri_style_key
from ct2mri_cli.weights import load_weights


def ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties broken by order (the maps are continuous)."""
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(len(values))
    return out


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney form: the chance that a positive voxel outranks a negative one."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks(score)[positive].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def spearman(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


def summary(rows: list[dict], label: str) -> None:
    if len(rows) < 3:
        return
    print(
        f"{label:28s} {len(rows):3d} cases: least/most trusted error ratio mean {np.mean([r['ratio'] for r in rows]):.2f} "
        f"(min {min(r['ratio'] for r in rows):.2f}), AUC mean {np.nanmean([r['auc'] for r in rows]):.3f} "
        f"(min {np.nanmin([r['auc'] for r in rows]):.3f}), Spearman(map mean, PSNR) "
        f"{spearman([r['map_mean'] for r in rows], [r['psnr'] for r in rows]):+.2f}, "
        f"map {np.mean([r['map_seconds'] for r in rows]):.2f} s per case"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--fitted", type=int, default=0, help="the first N cases fitted the map's coefficients")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    bundle = load_weights(default_weights())
    translator = Translator(bundle, torch.device("cpu"), bundle.sampling)
    rows = []
    print(f"{platform.machine()}, torch {torch.__version__}, {translator.threads['count']} threads")
    print(f"{'case':10s} {'PSNR':>6s} {'ratio':>6s} {'AUC':>6s} {'map':>6s} {'err>.2':>7s} {'s':>5s}")
    for pair in read_pairs(args.data, args.cases):
        ct = read_volume(args.data / pair["ct"])
        t1_path, mask_path = args.data / pair["mri"], args.data / pair["mask"]
        truth = np.asarray(read_volume(mask_path).data) > 0
        t1 = normalize_mri(np.asarray(read_volume(t1_path).data, np.float32), truth)
        result = translator.translate(ct, mri_style_key(t1_path, mask_path))
        scored = truth & result.mask
        error = np.abs(result.mri01 - t1)[scored]
        expected = result.expected_error01[scored]
        order = np.argsort(expected, kind="stable")
        tenth, half = max(1, len(order) // 10), len(order) // 2
        row = {
            "case": pair["case"],
            "source": pair["source"],
            "psnr": psnr(np.where(scored, result.mri01, 0.0), np.where(scored, t1, 0.0), scored),
            "ratio": float(error[order[-tenth:]].mean() / error[order[:half]].mean()),
            "auc": roc_auc(expected, error > UNSURE_ERROR),
            "map_mean": float(expected.mean()),
            "error_mean": float(error.mean()),
            "share_above": float((error > UNSURE_ERROR).mean()),
            "map_seconds": result.seconds["trust_map"],
            "sampling_seconds": result.seconds["sampling"],
            "fitted": len(rows) < args.fitted,
        }
        rows.append(row)
        print(
            f"{row['case']:10s} {row['psnr']:6.2f} {row['ratio']:6.2f} {row['auc']:6.3f} {row['map_mean']:6.3f} "
            f"{row['share_above']:7.3f} {row['map_seconds']:5.2f}",
            flush=True,
        )
    summary([r for r in rows if r["fitted"]], "cases that fitted the map")
    summary([r for r in rows if not r["fitted"]], "cases new to the map")
    summary(rows, "all")
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
