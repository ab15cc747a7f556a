"""Leave-one-brain-out: models against brains they never saw, and a non-learned baseline.

    python benchmarks/bench_lobo.py --model today=models/ct2mri-demo-2mm.safetensors \
        --model new=runs/new/export.safetensors --held-out colin27,s1 --seen mni --csv lobo.csv

For each brain (held out, and optionally ones the models trained on, for the gap between the
two), ``--cases`` whole-head CT/T1 pairs are made from it by ``generate_pair`` (1 mm, the
``--variety`` ranges, seeds that no training set uses).  Each CT goes through the full
``Translator.translate`` path (checks, brain extraction, pose, model grid, sampling, back to the
CT's grid) with the average style key, and the output is scored on the CT's grid inside the
brain (the pair's intracranial mask and the translation's own brain mask) against the pair's T1,
robust min-max normalised like training data: PSNR, SSIM and slice flicker.

The baseline needs no training: the CT's brain is split into CSF, grey and white matter by a
3-class Gaussian mixture on its soft-tissue HU (smoothed by 2 mm), each voxel gets its class posteriors'
mixture of three T1 levels (CSF dark, GM, WM bright; on CT white matter is the darker tissue), and the result is histogram-matched to the
average style key, the same target the models get.  Prints a table and writes CSV.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.data.synthesis import case_seed, fit_gmm_1d, gaussian_blur, generate_pair
from ct2mri_cli.evaluation.metrics import psnr, slice_flicker, ssim
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import Volume, slice_axis
from ct2mri_cli.preprocessing.intensity import normalize_mri
from ct2mri_cli.style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE
from ct2mri_cli.weights import load_weights

BASELINE_SMOOTHING_MM = 2.0  # FWHM; against CT noise, which is larger than the GM/WM contrast
EVALUATION_SEED = 777000  # a base seed that no training set of this project uses
# T1 levels of the CT's classes in order of HU: CSF (darkest on both), then white matter (darker
# than grey on CT, brighter on T1), then grey matter; before histogram matching
T1_LEVELS_BY_HU = (0.15, 0.85, 0.55)


def baseline_translation(ct_hu: np.ndarray, affine: np.ndarray, brain: np.ndarray, key: torch.Tensor) -> np.ndarray:
    """The CT's tissue classes remapped to T1 intensities and histogram-matched to ``key``.

    The mixture is fitted on the soft-tissue voxels (-5 to 50 HU after a 2 mm smoothing); voxels
    brighter than 60 HU (bone or calcification partial-volumed into the mask's edge) are dark on
    T1 and get the CSF level.
    """
    smooth = gaussian_blur(ct_hu.astype(np.float32), affine, (BASELINE_SMOOTHING_MM,) * 3)[brain].astype(np.float64)
    tissue = (smooth > -5.0) & (smooth < 50.0)
    means, sds, weights = fit_gmm_1d(smooth[tissue], 3)
    values = np.clip(smooth, -5.0, 50.0)
    dens = weights / (sds * math.sqrt(2 * math.pi)) * np.exp(-0.5 * ((values[:, None] - means) / sds) ** 2)
    post = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
    mapped = post @ np.asarray(T1_LEVELS_BY_HU)
    mapped[smooth > 60.0] = T1_LEVELS_BY_HU[0]
    target = key[0].double().numpy()
    edges = np.linspace(LOWER_EDGE, UPPER_EDGE, NUM_BINS + 1)
    target_cdf = np.concatenate([[0.0], np.cumsum(target) / target.sum()])
    ranks = (np.argsort(np.argsort(mapped, kind="stable"), kind="stable") + 0.5) / mapped.size
    out = np.zeros(ct_hu.shape, dtype=np.float32)
    out[brain] = np.interp(ranks, target_cdf, edges)
    return out


def score(pred01: np.ndarray, ref01: np.ndarray, mask: np.ndarray, axis: int) -> dict[str, float]:
    p = np.where(mask, pred01, 0.0)
    r = np.where(mask, ref01, 0.0)
    return {"psnr": psnr(p, r, mask), "ssim": ssim(p, r, mask), "flicker": slice_flicker(p, r, mask, axis=axis)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=WEIGHTS", help="a model to score (repeat)")
    parser.add_argument("--held-out", default="colin27,s1", help="brains the models never trained on")
    parser.add_argument("--seen", default="", help="brains the models trained on (for the gap)")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--variety", default="calibrated")
    parser.add_argument("--mode", default="coprediction")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = load_weights(Path(path))
    if not models:
        parser.error("give at least one --model NAME=WEIGHTS")
    brains = [(b, "held out") for b in args.held_out.split(",") if b] + [(b, "seen") for b in args.seen.split(",") if b]

    rows = []
    for brain_name, kind in brains:
        for i in range(args.cases):
            seed = case_seed(EVALUATION_SEED, i)
            pair = generate_pair(brain_name, seed, None, variety=args.variety)
            ct = Volume(data=pair.ct.astype(np.float32), affine=pair.affine, description=f"{brain_name} {seed}")
            brain = pair.mask.astype(bool)
            axis = slice_axis(pair.affine)
            outputs = {}
            for name, bundle in models.items():
                options = bundle.sampling.with_overrides(mode=args.mode, steps=args.steps)
                start = time.perf_counter()
                out = Translator(bundle, torch.device("cpu"), options).translate(ct, bundle.default_style_key)
                outputs[name] = (out, time.perf_counter() - start)
            first = next(iter(models.values()))
            t1 = normalize_mri(pair.t1.astype(np.float32), brain, first.preprocess.mri_percentiles)
            scored = brain & np.logical_and.reduce([o.mask for o, _ in outputs.values()])
            for name, (out, seconds) in outputs.items():
                rows.append({"brain": brain_name, "kind": kind, "case": i, "seed": seed, "method": name,
                             **score(out.mri01, t1, scored, axis), "seconds": round(seconds, 1)})
            base = baseline_translation(pair.ct, pair.affine, scored, first.default_style_key)
            rows.append({"brain": brain_name, "kind": kind, "case": i, "seed": seed, "method": "baseline (CT classes)",
                         **score(base, t1, scored, axis), "seconds": 0.0})
            print(f"{brain_name} case {i}: " + ", ".join(f"{r['method']} {r['psnr']:.2f} dB" for r in rows[-len(models) - 1:]), flush=True)

    print(f"\n{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; sampler {args.mode} "
          f"S={args.steps}; {args.cases} case(s) per brain, variety {args.variety}\n")
    print("| brain | kind | method | PSNR (dB) | SSIM | flicker |\n|---|---|---|---|---|---|")
    methods = list(models) + ["baseline (CT classes)"]
    for brain_name, kind in brains:
        for method in methods:
            sel = [r for r in rows if r["brain"] == brain_name and r["method"] == method]
            mean = {k: float(np.mean([r[k] for r in sel])) for k in ("psnr", "ssim", "flicker")}
            print(f"| {brain_name} | {kind} | {method} | {mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['flicker']:.4f} |")
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
