"""What reading the two inputs right is worth: automatic against true CT brain mask, and the style
key of a whole-head T1 against the key of its true brain, through ``translate``.

    python benchmarks/bench_inputs.py DATA_DIR [--cases N] [--csv docs/inputs.csv]

DATA_DIR is a ``ct2mri synthesize`` folder.  Each case's CT is translated by the bundled model
(default sampler) four ways: automatic mask and the model's default key; the true intracranial
mask and the default key; automatic mask and the key of the case's whole-head T1 (its brain
found by ``ct2mri_cli.style.brain``); automatic mask and the key of the T1 over its true brain.
Scored on the CT's grid inside the true mask and the output's mask, against the T1 robust
min-max normalised inside the true mask.  Also reported: the W1 distance between the head key
and the brain key, and the automatic mask's Dice.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_brainmask import read_pairs, write_rows  # benchmarks/ is on the path when run as a script

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.evaluation.metrics import psnr
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import read_volume
from ct2mri_cli.preprocessing.intensity import normalize_mri
from ct2mri_cli.style.key import key_distance
from ct2mri_cli.style.sources import mri_style_key
from ct2mri_cli.weights import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    bundle = load_weights(default_weights())
    translator = Translator(bundle, torch.device("cpu"), bundle.sampling)
    pairs = read_pairs(args.data, args.cases)
    rows = []
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'case':10s} {'source':10s} {'dice':>6s} {'auto':>6s} {'true':>6s} {'head':>6s} {'brain':>6s} {'W1':>7s}")
    for pair in pairs:
        ct = read_volume(args.data / pair["ct"])
        t1_path, mask_path = args.data / pair["mri"], args.data / pair["mask"]
        truth = np.asarray(read_volume(mask_path).data) > 0
        t1 = normalize_mri(np.asarray(read_volume(t1_path).data, np.float32), truth)
        start = time.perf_counter()
        head_key = mri_style_key(t1_path)
        key_seconds = time.perf_counter() - start
        brain_key = mri_style_key(t1_path, mask_path)
        auto_view = translator.prepare(ct)
        true_view = translator.prepare(ct, truth)
        outputs = {
            "auto": translator.translate_view(auto_view, bundle.default_style_key),
            "true": translator.translate_view(true_view, bundle.default_style_key),
            "head": translator.translate_view(auto_view, head_key),
            "brain": translator.translate_view(auto_view, brain_key),
        }
        scored = truth & outputs["auto"].mask & outputs["true"].mask
        row = {
            "case": pair["case"],
            "source": pair["source"],
            "mask_dice": 2.0 * float((auto_view.mask & truth).sum()) / float(auto_view.mask.sum() + truth.sum()),
            **{
                f"psnr_{k}": psnr(np.where(scored, o.mri01, 0.0), np.where(scored, t1, 0.0), scored)
                for k, o in outputs.items()
            },
            "w1_head_brain": key_distance(head_key, brain_key),
            "head_key_seconds": key_seconds,
        }
        rows.append(row)
        print(
            f"{row['case']:10s} {row['source']:10s} {row['mask_dice']:6.3f} {row['psnr_auto']:6.2f} {row['psnr_true']:6.2f} "
            f"{row['psnr_head']:6.2f} {row['psnr_brain']:6.2f} {row['w1_head_brain']:7.4f}",
            flush=True,
        )
    auto_true = [r["psnr_auto"] - r["psnr_true"] for r in rows]
    head_brain = [r["psnr_head"] - r["psnr_brain"] for r in rows]
    print(
        f"automatic - true mask: mean {np.mean(auto_true):+.2f} dB, range {min(auto_true):+.2f} to {max(auto_true):+.2f}"
    )
    print(
        f"head key - brain key: mean {np.mean(head_brain):+.2f} dB, range {min(head_brain):+.2f} to {max(head_brain):+.2f}; "
        f"W1 max {max(r['w1_head_brain'] for r in rows):.4f}"
    )
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
