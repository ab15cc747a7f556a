"""Quality of a model on held-out synthetic pairs, its style control, and its speed on a real CT.

    python benchmarks/eval_bundled_model.py [--weights FILE] [--json out.json]

For each held-out pair (a subject seed that the bundled training set does not use), the CT is
translated the way ``ct2mri translate`` does it (automatic brain extraction, model grid, back to
the CT grid) with ISTA and with independent slices, and compared inside the brain with the pair's
T1 (robust min-max normalised like training data).  A plain intensity remap of the CT is the
baseline: the least-squares linear map of the windowed CT onto the T1 inside the brain, fitted on
the very pair it is scored on (an optimistic baseline).

Style control: the same CT translated with the ``colin27`` and the ``average`` keys; the 1D
Wasserstein distance (over the key's 128 bins) between each output's brain histogram and each
key's histogram.  Prints tables (markdown) and optionally writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.bundled import bundled_key_path, default_weights
from ct2mri_cli.evaluation.metrics import psnr, ssim
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.preprocessing.intensity import normalize_ct, normalize_mri
from ct2mri_cli.style.key import (
    LOWER_EDGE,
    NUM_BINS,
    UPPER_EDGE,
    load_style_key,
    style_key,
)
from ct2mri_cli.weights import load_weights

HELD_OUT = (("mni", 90001), ("colin27", 90002))
REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def histogram_w1(values01: np.ndarray, key: torch.Tensor) -> float:
    """Wasserstein-1 distance between intensities in (0.001, 1] and a key's histogram (same bins)."""
    counts, _ = np.histogram(
        values01[(values01 > LOWER_EDGE) & (values01 <= UPPER_EDGE)], NUM_BINS, (LOWER_EDGE, UPPER_EDGE)
    )
    p = counts / counts.sum()
    q = key[0].double().numpy() / key[0].double().sum().item()
    width = (UPPER_EDGE - LOWER_EDGE) / NUM_BINS
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum() * width)


def linear_remap(ct_hu: np.ndarray, t1_01: np.ndarray, mask: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    x = normalize_ct(ct_hu, window)[mask].astype(np.float64)
    a, b = np.polyfit(x, t1_01[mask].astype(np.float64), 1)
    out = np.zeros_like(t1_01)
    out[mask] = np.clip(a * x + b, 0.0, 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=default_weights())
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ct2mri_cli.data.synthesis import generate_pair

    bundle = load_weights(args.weights)
    d = bundle.sampling
    average = bundle.default_style_key
    colin = load_style_key(bundled_key_path("colin27"))[0]
    rows, style_rows = [], []
    for source, seed in HELD_OUT:
        pair = generate_pair(source, seed)
        ct = Volume(data=pair.ct.astype(np.float32), affine=pair.affine, description=f"held-out {source} {seed}")
        brain = pair.mask.astype(bool)
        t1 = normalize_mri(pair.t1.astype(np.float32), brain, bundle.preprocess.mri_percentiles)
        own_key = style_key(t1, brain)
        results = {}
        for label, mode, key in (
            ("ISTA, average key", "ista", average),
            ("co-prediction, average key", "coprediction", average),
            ("independent, average key", "independent", average),
            ("ISTA, own key", "ista", own_key),
            ("ISTA, colin27 key", "ista", colin),
        ):
            options = d.with_overrides(mode=mode)
            start = time.perf_counter()
            out = Translator(bundle, torch.device("cpu"), options).translate(ct, key)
            results[label] = (out, time.perf_counter() - start)
        scored = brain & results["ISTA, average key"][0].mask
        for label, (out, seconds) in results.items():
            if "colin27" in label:
                continue
            rows.append(
                {
                    "case": f"{source} {seed}",
                    "method": label,
                    "psnr": psnr(out.mri01, t1, scored),
                    "ssim": ssim(out.mri01, t1, scored),
                    "evaluations": out.evaluations,
                    "seconds": seconds,
                }
            )
        remap = linear_remap(pair.ct.astype(np.float32), t1, scored, bundle.preprocess.ct_window_hu)
        rows.append(
            {
                "case": f"{source} {seed}",
                "method": "linear CT remap (fitted on the reference)",
                "psnr": psnr(remap, t1, scored),
                "ssim": ssim(remap, t1, scored),
                "evaluations": 0,
                "seconds": 0.0,
            }
        )
        for label in ("ISTA, average key", "ISTA, colin27 key"):
            out = results[label][0]
            values = out.mri_model01[out.mask_model]
            style_rows.append(
                {
                    "case": f"{source} {seed}",
                    "output": label,
                    "w1_to_average": histogram_w1(values, average),
                    "w1_to_colin27": histogram_w1(values, colin),
                }
            )

    print(
        f"weights {args.weights.name} ({bundle.sha256[:12]}), sampler steps={d.steps} corrections={d.corrections} "
        f"step_size={d.step_size} ({d.correction_norm}); {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| case | method | PSNR (dB) | SSIM | network evaluations | seconds |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['evaluations']} | {r['seconds']:.1f} |"
        )
    print("\n| case | output | W1 to average key | W1 to colin27 key |\n|---|---|---|---|")
    for r in style_rows:
        print(f"| {r['case']} | {r['output']} | {r['w1_to_average']:.4f} | {r['w1_to_colin27']:.4f} |")

    real = {}
    if REAL_CT.exists():
        options = d
        start = time.perf_counter()
        volume = read_volume(REAL_CT)
        out = Translator(bundle, torch.device("cpu"), options).translate(volume, average)
        real = {
            "seconds_total": time.perf_counter() - start,
            **{k: round(v, 2) for k, v in out.seconds.items()},
            "model_shape": list(out.record.model_shape),
            "evaluations": out.evaluations,
        }
        print(f"\nreal head CT ({REAL_CT.name}): {real}")
    if args.json:
        args.json.write_text(json.dumps({"quality": rows, "style": style_rows, "real_ct": real}, indent=2) + "\n")


if __name__ == "__main__":
    main()
