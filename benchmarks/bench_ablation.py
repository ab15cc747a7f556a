"""Sampler ablation on held-out synthetic pairs with a model: sampler x steps x style, and lambda.

    python benchmarks/bench_ablation.py [--weights FILE] [--steps 10 25 50] [--lambdas ...] [--csv out.csv]

Each held-out pair (subject seeds the bundled training set does not use) is preprocessed like
training data (``prepare_pair`` without registration: model grid, windowed CT, normalised T1,
brain mask) and translated on the model grid with ``sample_volume``.  Scores are inside the
brain, from :func:`ct2mri_cli.evaluation.metrics.evaluate_volumes` (PSNR, SSIM, NRMSE, slice flicker and
z-gradient ratio of the error).  The lambda sweep runs ISTA at the smallest step count with both
correction scales (Eq. 5 as printed, ``paper``, and the released code's ``released``, a factor
sqrt(H*W) smaller).  Prints markdown tables and optionally writes every row to CSV as it is
measured, so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.diffusion.bridge import BridgeSchedule
from ct2mri_cli.diffusion.model_space import sample_model_space
from ct2mri_cli.diffusion.sampler import corrections_applied, network_evaluations
from ct2mri_cli.evaluation.metrics import evaluate_volumes
from ct2mri_cli.io.volumes import Volume
from ct2mri_cli.network import network_denoiser
from ct2mri_cli.settings import CORRECTION_CAP, SamplingConfig
from ct2mri_cli.weights import load_weights

HELD_OUT = (("mni", 90001), ("colin27", 90002))
COLUMNS = (
    "case",
    "sampler",
    "steps",
    "corrections",
    "lambda",
    "norm",
    "cap",
    "style",
    "psnr",
    "ssim",
    "nrmse",
    "flicker",
    "z_gradient_ratio",
    "evaluations",
    "seconds",
)


def held_out_cases(config):
    from ct2mri_cli.data.synthesis import generate_pair
    from ct2mri_cli.preprocessing.pairs import prepare_pair

    for source, seed in HELD_OUT:
        pair = generate_pair(source, seed)
        ct = Volume(data=pair.ct.astype(np.float32), affine=pair.affine)
        t1 = Volume(data=pair.t1.astype(np.float32), affine=pair.affine)
        yield f"{source} {seed}", prepare_pair(ct, t1, config, register=False)


def run(denoiser, case, prepared, style, style_name, mode, steps, corrections, lam, norm, cap=CORRECTION_CAP):
    sampling = SamplingConfig(
        steps=steps, corrections=corrections, step_size=lam, mode=mode, correction_norm=norm, correction_cap=cap
    )
    start = time.perf_counter()
    pred = sample_model_space(
        denoiser, prepared.ct01, style, sampling, torch.device("cpu"), BridgeSchedule(), batch_size=32
    )
    seconds = time.perf_counter() - start
    pred = pred * prepared.mask
    scores = evaluate_volumes(pred, prepared.mri01, prepared.mask, normalise="none")
    m = corrections_applied(mode, corrections, lam)
    return {
        "case": case,
        "sampler": mode,
        "steps": steps,
        "corrections": m,
        "lambda": lam if m else "",
        "norm": norm if m else "",
        "cap": cap if m else "",
        "style": style_name,
        **{k: scores[k] for k in ("psnr", "ssim", "nrmse", "flicker", "z_gradient_ratio")},
        "evaluations": network_evaluations(prepared.ct01.shape[0], steps, corrections, mode, lam),
        "seconds": seconds,
    }


def table(rows, title):
    print(f"\n### {title}\n")
    print(
        "| case | sampler | S | M | lambda | scale | cap | style | PSNR | SSIM | NRMSE | flicker | z-grad ratio | evals | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lam = f"{r['lambda']:g}" if r["lambda"] != "" else ""
        cap = f"{r['cap']:g}" if r["cap"] != "" else ""
        print(
            f"| {r['case']} | {r['sampler']} | {r['steps']} | {r['corrections']} | {lam} | {r['norm']} | {cap} | {r['style']} | "
            f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['nrmse']:.4f} | {r['flicker']:.4f} | {r['z_gradient_ratio']:.3f} | "
            f"{r['evaluations']} | {r['seconds']:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=default_weights())
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--lambdas", type=float, nargs="+", default=[0.05, 0.15, 0.5, 1.5, 5.0, 15.0, 50.0])
    parser.add_argument("--cases", type=int, default=len(HELD_OUT), help="how many held-out pairs")
    parser.add_argument(
        "--caps",
        type=float,
        nargs="+",
        default=[0.0, CORRECTION_CAP],
        help="correction caps of the lambda sweep (0: none)",
    )
    parser.add_argument("--sweep-only", action="store_true", help="only the lambda sweep")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()

    bundle = load_weights(args.weights)
    denoiser = network_denoiser(bundle.network)
    print(
        f"weights {args.weights.name} ({bundle.sha256[:12]}); {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    ablation, sweep = [], []
    handle = args.csv.open("w", newline="") if args.csv else None
    writer = csv.DictWriter(handle, fieldnames=COLUMNS) if handle else None
    if writer:
        writer.writeheader()

    def record(rows, row):
        rows.append(row)
        if writer:
            writer.writerow(row)
            handle.flush()

    for index, (case, prepared) in enumerate(held_out_cases(bundle.preprocess)):
        if index >= args.cases:
            break
        styles = {"average": bundle.default_style_key, "own": prepared.style_key}
        for steps in [] if args.sweep_only else args.steps:
            for mode in ("independent", "coprediction", "ista"):
                for name, key in styles.items():
                    record(ablation, run(denoiser, case, prepared, key, name, mode, steps, 1, 0.5, "released"))
        for cap in args.caps:
            for norm in ("released", "paper"):
                for lam in args.lambdas:
                    record(
                        sweep,
                        run(
                            denoiser,
                            case,
                            prepared,
                            bundle.default_style_key,
                            "average",
                            "ista",
                            min(args.steps),
                            1,
                            lam,
                            norm,
                            cap,
                        ),
                    )
    if handle:
        handle.close()
    table(ablation, "Ablation: sampler x steps x style (ISTA: M = 1, lambda 0.5, released scale)")
    table(sweep, f"Correction step size (ISTA, S = {min(args.steps)}, M = 1, average key)")


if __name__ == "__main__":
    main()
