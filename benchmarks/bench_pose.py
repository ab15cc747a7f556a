"""Head pose: does a turned head translate like the upright one?  Prints a table.

    python benchmarks/bench_pose.py [--steps 3]

A synthetic MNI head pair (CT and its T1 truth) is synthesised upright and turned by 18 degrees of
pitch and 4 of roll (the same subject, resampled once either way, on the same axis-aligned
grid), and both heads are translated by the bundled model through the full
`translate` path, once in the canonical frame (the head pose found by registration) and once
along the scan's native axes.  Scores: PSNR / SSIM inside the brain against each head's own
truth.  Then the real head CT (Cranium.inv3) with its affine rotated by 15 degrees: agreement
(PSNR inside the brain) of its output, brought back, with the unrotated scan's output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.data.synthesis import generate_pair
from ct2mri_cli.evaluation.metrics import psnr, ssim
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.weights import load_weights

REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def rotation_ras(pitch: float, roll: float) -> np.ndarray:
    p, r = math.radians(pitch), math.radians(roll)
    about_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    about_y = np.array([[math.cos(r), 0, math.sin(r)], [0, 1, 0], [-math.sin(r), 0, math.cos(r)]])
    return about_y @ about_x


def score(translator: Translator, ct: np.ndarray, t1: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> tuple:
    result = translator.translate(Volume(data=ct, affine=affine), translator.bundle.default_style_key)
    lo, hi = np.percentile(t1[brain], [0.5, 99.5])
    truth = np.clip((t1 - lo) / (hi - lo), 0, 1) * brain
    inside = brain & result.mask
    pose = result.pose.angles_degrees if result.pose is not None else None
    return psnr(result.mri01, truth, inside), ssim(result.mri01 * inside, truth * inside, inside), pose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    bundle = load_weights(default_weights())
    sampling = dataclasses.replace(bundle.sampling, steps=args.steps, mode="coprediction")
    canonical = dataclasses.replace(bundle, preprocess=dataclasses.replace(bundle.preprocess, frame="canonical"))
    translators = {
        "canonical frame": Translator(canonical, torch.device("cpu"), sampling),
        "native axes": Translator(canonical, torch.device("cpu"), sampling, native_axes=True),
    }
    heads = {
        "upright": generate_pair("mni", 4242, spacing_mm=2.0),
        "turned 18 pitch, 4 roll": generate_pair("mni", 4242, spacing_mm=2.0, turn=rotation_ras(18.0, 4.0)),
    }
    print(
        f"{platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"co-prediction S={args.steps}\n"
    )
    print("| frame | head | PSNR (dB) | SSIM | pose found (pitch, roll, yaw) |\n|---|---|---|---|---|")
    for label, translator in translators.items():
        rows = {}
        for head, pair in heads.items():
            rows[head] = score(
                translator, pair.ct.astype(np.float32), pair.t1.astype(np.float32), pair.mask.astype(bool), pair.affine
            )
            p, s, pose = rows[head]
            print(f"| {label} | {head} | {p:.2f} | {s:.4f} | {pose} |")
        (p0, s0, _), (p1, s1, _) = rows.values()
        print(f"| {label} | gap | {p0 - p1:+.2f} | {s0 - s1:+.4f} | |")
    if REAL_CT.exists():
        real = read_volume(REAL_CT)
        rotated_affine = real.affine.copy()
        centre = real.affine[:3, :3] @ ((np.asarray(real.shape) - 1) / 2.0) + real.affine[:3, 3]
        spin = rotation_ras(15.0, 0.0)
        rotated_affine[:3, :3] = spin @ real.affine[:3, :3]
        rotated_affine[:3, 3] = spin @ (real.affine[:3, 3] - centre) + centre
        print(
            "\n| frame | real head CT, affine turned 15 degrees: agreement with the unturned output (PSNR dB, brain) | seconds |\n|---|---|---|"
        )
        for label, translator in translators.items():
            start = time.perf_counter()
            a = translator.translate(real, translator.bundle.default_style_key)
            b = translator.translate(
                dataclasses.replace(real, affine=rotated_affine), translator.bundle.default_style_key
            )
            inside = a.mask & b.mask
            print(f"| {label} | {psnr(b.mri01, a.mri01, inside):.2f} | {(time.perf_counter() - start) / 2:.1f} |")


if __name__ == "__main__":
    main()
