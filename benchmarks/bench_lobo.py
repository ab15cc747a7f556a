"""Leave-one-brain-out: models against brains they never saw, and a non-learned baseline.

    python benchmarks/bench_lobo.py --model today=models/previous/ct2mri-demo-2mm.safetensors \
        --model new=runs/new/export.safetensors --held-out colin27,s1 --seen mni --csv lobo.csv

For each brain (held out, and optionally ones the models trained on, for the gap between the
two), ``--cases`` whole-head CT/T1 pairs are made from it by ``generate_pair`` (1 mm, the
``--variety`` ranges, seeds that no training set uses).  Each CT goes through the full
translate path (checks, brain extraction, pose, model grid, sampling, back to the CT's grid;
the preparation done once per model and shared by its sampler settings) with each ``--sampler``
setting and the model's average style key (``--key own``: the key of the case's own T1, for
models and baseline alike, which takes the style out of the comparison), and the output is
scored on the CT's grid inside the brain (the pair's intracranial mask and the translation's own brain mask) against the pair's T1,
robust min-max normalised like training data: PSNR, SSIM, slice flicker and the CSF agreement
(:mod:`ct2mri_cli.evaluation.csf`: does the output show the CSF its CT shows), beside what the
true T1 itself scores on that measure (the level of a faithful T1).

The baseline needs no training: the CT's brain is split into CSF, grey and white matter by a
3-class Gaussian mixture on its soft-tissue HU (smoothed by 2 mm), each voxel gets its class posteriors'
mixture of three T1 levels (CSF dark, GM, WM bright; on CT white matter is the darker tissue), and the result is histogram-matched to the
style key, the same target the models get.  Prints a table and writes CSV (a row per case and
method as it comes).  ``--pairs-cache DIR`` keeps the pairs, so that scoring another model on the
same cases skips making them again (a pair is reused only by the generator that made it).
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import itertools
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.data import synthesis
from ct2mri_cli.data.synthesis import case_seed, fit_gmm_1d, gaussian_blur, generate_pair
from ct2mri_cli.diffusion.sampler import network_evaluations
from ct2mri_cli.evaluation.csf import csf_agreement
from ct2mri_cli.evaluation.metrics import psnr, slice_flicker, ssim
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import Volume, slice_axis
from ct2mri_cli.preprocessing.intensity import normalize_mri
from ct2mri_cli.style.key import LOWER_EDGE, NUM_BINS, UPPER_EDGE, style_key
from ct2mri_cli.weights import load_weights

BASELINE_SMOOTHING_MM = 2.0  # FWHM; against CT noise, which is larger than the GM/WM contrast
EVALUATION_SEED = 777000  # a base seed that no training set of this project uses
# T1 levels of the CT's classes in order of HU: CSF (darkest on both), then white matter (darker
# than grey on CT, brighter on T1), then grey matter; before histogram matching
T1_LEVELS_BY_HU = (0.15, 0.85, 0.55)
BASELINE = "baseline (CT classes)"


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


@dataclass(frozen=True)
class EvaluationPair:
    """A whole-head CT (HU), its T1 and intracranial mask on one 1 mm grid."""

    ct: np.ndarray
    t1: np.ndarray
    mask: np.ndarray
    affine: np.ndarray


@functools.cache
def generator_fingerprint() -> str:
    """A digest of the pair generator's source files: a cached pair is reused only by the same generator."""
    digest = hashlib.sha256()
    data = Path(synthesis.__file__).parents[1]
    package = data.parent
    whole_heads = [package / "preprocessing" / "registration.py", package / "style" / "brain.py"]  # their anatomies
    for path in (
        sorted((data / "synthesis").glob("*.py"))
        + sorted(p for p in (data / "projection").glob("*") if p.is_file())
        + [data / "sources.py", *whole_heads]
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def evaluation_pair(
    brain: str, seed: int, variety: str, cache: Path | None, ct_model: str = "mixing"
) -> EvaluationPair:
    """``generate_pair(brain, seed)`` at 1 mm, kept in ``cache`` (when given) and read back from there."""
    tag = variety if ct_model == "mixing" else f"{variety}_{ct_model}"
    path = None if cache is None else cache / f"{brain}_{tag}_{seed}_{generator_fingerprint()}.npz"
    if path is not None and path.exists():
        with np.load(path) as stored:
            return EvaluationPair(**{name: stored[name] for name in ("ct", "t1", "mask", "affine")})
    made = generate_pair(brain, seed, None, variety=variety, ct_model=ct_model)
    pair = EvaluationPair(ct=made.ct, t1=made.t1, mask=made.mask, affine=made.affine)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".partial.npz")
        np.savez(partial, **vars(pair))
        partial.replace(path)
    return pair


def score(pred01: np.ndarray, ref01: np.ndarray, mask: np.ndarray, axis: int) -> dict[str, float]:
    p = np.where(mask, pred01, 0.0)
    r = np.where(mask, ref01, 0.0)
    return {"psnr": psnr(p, r, mask), "ssim": ssim(p, r, mask), "flicker": slice_flicker(p, r, mask, axis=axis)}


def parse_sampler(text: str) -> tuple[str, int, int]:
    """``MODE:S`` or ``MODE:S:M`` (ISTA corrections per step; 1 unless given) as (mode, S, M)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"--sampler takes MODE:S or MODE:S:M, not {text!r}")
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1


def sampler_label(mode: str, steps: int, corrections: int) -> str:
    return f"{mode} S={steps}" + (f" M={corrections}" if mode == "ista" else "")


class CsvRows:
    """Rows appended to a CSV file as they come, so that an interrupted run keeps its cases."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.rows = path, []

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if self.path is None:
            return
        first = len(self.rows) == 1
        with open(self.path, "w" if first else "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if first:
                writer.writeheader()
            writer.writerow(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=WEIGHTS", help="a model to score (repeat)"
    )
    parser.add_argument("--held-out", default="colin27,s1", help="brains the models never trained on")
    parser.add_argument("--seen", default="", help="brains the models trained on (for the gap)")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--variety", default="calibrated")
    parser.add_argument(
        "--ct-model",
        default="mixing",
        help="CT appearance models of the evaluation CTs, comma-separated (mixing, projection): "
        "the same subjects imaged by each",
    )
    parser.add_argument(
        "--sampler",
        action="append",
        type=parse_sampler,
        default=[],
        metavar="MODE:S[:M]",
        help="sampler settings to score (repeat; default coprediction:3)",
    )
    parser.add_argument(
        "--key",
        choices=("average", "own"),
        default="average",
        help="style key: the model's average key, or the key of the case's own T1 (for every method)",
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument(
        "--pairs-cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the evaluation pairs here and reuse them in later runs (same generator only)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    samplers = args.sampler or [("coprediction", 3, 1)]
    models = {}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = load_weights(Path(path))
    if not models:
        parser.error("give at least one --model NAME=WEIGHTS")
    brains = [(b, "held out") for b in args.held_out.split(",") if b] + [(b, "seen") for b in args.seen.split(",") if b]
    methods = [(name, sampler) for name in models for sampler in samplers]
    translators = {
        (name, sampler): Translator(
            models[name],
            torch.device("cpu"),
            models[name].sampling.with_overrides(mode=sampler[0], steps=sampler[1], corrections=sampler[2]),
        )
        for name, sampler in methods
    }

    def method_name(name: str, sampler: tuple[str, int, int]) -> str:
        return name if len(samplers) == 1 else f"{name}, {sampler_label(*sampler)}"

    first = next(iter(models.values()))
    table = CsvRows(args.csv)
    ct_models = [m for m in args.ct_model.split(",") if m]
    for ct_model, (brain_name, kind), i in itertools.product(ct_models, brains, range(args.cases)):
        seed = case_seed(EVALUATION_SEED, i)
        pair = evaluation_pair(brain_name, seed, args.variety, args.pairs_cache, ct_model)
        ct = Volume(data=pair.ct.astype(np.float32), affine=pair.affine, description=f"{brain_name} {seed}")
        brain = pair.mask.astype(bool)
        axis = slice_axis(pair.affine)
        t1 = normalize_mri(pair.t1.astype(np.float32), brain, first.preprocess.mri_percentiles)
        own_key = style_key(t1, brain) if args.key == "own" else None
        outputs, views = {}, {}
        for (name, sampler), translator in translators.items():
            start = time.perf_counter()
            if name not in views:  # checks, brain, pose and model grid: once per model and case
                views[name] = (translator.prepare(ct), time.perf_counter() - start)
                start = time.perf_counter()
            view, prepare_seconds = views[name]
            key = own_key if own_key is not None else models[name].default_style_key
            out = translator.translate_view(view, key)
            used = translator.sampling
            evaluations = network_evaluations(1, used.steps, used.corrections, used.mode, used.step_size)
            outputs[method_name(name, sampler)] = (out, prepare_seconds + time.perf_counter() - start, evaluations)
        scored = brain & np.logical_and.reduce([o.mask for o, _, _ in outputs.values()])
        base = baseline_translation(
            pair.ct, pair.affine, scored, own_key if own_key is not None else first.default_style_key
        )
        outputs[BASELINE] = (None, 0.0, 0)
        truth_csf = csf_agreement(pair.ct, t1, scored, ct.spacing).dice  # what the true T1 itself scores
        line = []
        for method, (out, seconds, evaluations) in outputs.items():
            picture = base if out is None else out.mri01
            metrics = score(picture, t1, scored, axis)
            metrics["csf_dice"] = csf_agreement(pair.ct, picture, scored, ct.spacing).dice
            table.add(
                {
                    "brain": brain_name,
                    "kind": kind,
                    "ct_model": ct_model,
                    "case": i,
                    "seed": seed,
                    "method": method,
                    "key": args.key,
                    **metrics,
                    "evaluations_per_slice": evaluations,
                    "seconds": round(seconds, 1),
                    "true_t1_csf_dice": truth_csf,
                }
            )
            line.append(f"{method} {metrics['psnr']:.2f} dB / {metrics['ssim']:.3f}")
        print(f"{brain_name} ({ct_model} CT) case {i}: " + ", ".join(line), flush=True)

    print(
        f"\n{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.cases} case(s) per brain, variety {args.variety}, {args.key} style key\n"
    )
    print(
        "| brain | kind | CT model | method | network evaluations per slice | PSNR (dB) | SSIM | flicker | CSF agreement "
        "| seconds per case | CSF agreement of the true T1 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for ct_model, (brain_name, kind) in itertools.product(ct_models, brains):
        for method in [method_name(n, s) for n, s in methods] + [BASELINE]:
            sel = [
                r
                for r in table.rows
                if r["brain"] == brain_name and r["method"] == method and r["ct_model"] == ct_model
            ]
            mean = {
                k: float(np.mean([r[k] for r in sel]))
                for k in ("psnr", "ssim", "flicker", "csf_dice", "seconds", "true_t1_csf_dice")
            }
            print(
                f"| {brain_name} | {kind} | {ct_model} | {method} | {sel[0]['evaluations_per_slice']} | "
                f"{mean['psnr']:.2f} | {mean['ssim']:.4f} | {mean['flicker']:.4f} | {mean['csf_dice']:.3f} | "
                f"{mean['seconds']:.0f} | {mean['true_t1_csf_dice']:.3f} |"
            )


if __name__ == "__main__":
    main()
