"""Does the output show the CSF the CT shows?  The CSF agreement of ``translate``, no MRI needed.

    python benchmarks/bench_csf.py DATA_DIR [--cases N] [--real] [--weights FILE] [--csv docs/csf_agreement.csv]

DATA_DIR is a ``ct2mri synthesize`` folder of a brain the model never saw (SRI24 for the bundled one).  Each
CT is translated by the bundled model or ``--weights`` (default sampler, the case's own T1 key) and the Dice of
the CT's CSF with the output's darkest voxels of the same share is taken inside the true brain
(:mod:`ct2mri_cli.evaluation.csf`); the same for the true T1 (what a perfect output scores), the
non-learned baseline of ``bench_lobo`` (the CT's tissue classes, histogram-matched to the key)
and a random picture (the share itself).  ``--real`` adds the real head CT of Debian's
invesalius-examples, scored inside the automatic brain mask (no true T1 there).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from bench_brainmask import read_pairs, write_rows  # benchmarks/ is on the path when run as a script
from bench_lobo import baseline_translation

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.evaluation.csf import csf_agreement
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import read_volume
from ct2mri_cli.style.sources import mri_style_key
from ct2mri_cli.weights import load_weights

REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--weights", type=Path, default=None, help="the model (default: the bundled one)")
    args = parser.parse_args()
    weights = args.weights or default_weights()
    bundle = load_weights(weights)
    digest = bundle.sha256[:12] if bundle.sha256 else ""
    translator = Translator(bundle, torch.device("cpu"), bundle.sampling)
    print(f"{weights}; {platform.machine()}, torch {torch.__version__}, {translator.threads['count']} threads")
    print(f"{'case':12s} {'share':>6s} {'model':>6s} {'true T1':>7s} {'baseline':>8s}")
    rows = []
    for pair in read_pairs(args.data, args.cases):
        ct = read_volume(args.data / pair["ct"])
        t1_path, mask_path = args.data / pair["mri"], args.data / pair["mask"]
        brain = np.asarray(read_volume(mask_path).data) > 0
        key = mri_style_key(t1_path, mask_path)
        result = translator.translate(ct, key)
        scored = brain & result.mask
        hu = np.asarray(ct.data, dtype=np.float32)
        true_t1 = np.asarray(read_volume(t1_path).data, dtype=np.float32)
        pictures = {
            "model": result.mri01,
            "true_t1": true_t1,
            "baseline": baseline_translation(hu, ct.affine, scored, key),
        }
        scores = {name: csf_agreement(hu, picture, scored, ct.spacing) for name, picture in pictures.items()}
        row = {
            "case": pair["case"],
            "source": pair["source"],
            "csf_share": scores["model"].csf_share,
            "weights": digest,
            **{name: score.dice for name, score in scores.items()},
        }
        rows.append(row)
        print(
            f"{row['case']:12s} {row['csf_share']:6.3f} {row['model']:6.3f} {row['true_t1']:7.3f} {row['baseline']:8.3f}",
            flush=True,
        )
    if rows:
        means = {
            name: float(np.mean([r[name] for r in rows])) for name in ("csf_share", "model", "true_t1", "baseline")
        }
        print(
            f"{'mean':12s} {means['csf_share']:6.3f} {means['model']:6.3f} {means['true_t1']:7.3f} {means['baseline']:8.3f}"
        )
    if args.real and REAL_CT.exists():
        ct = read_volume(REAL_CT)
        result = translator.translate(ct, bundle.default_style_key)
        hu = np.asarray(ct.data, dtype=np.float32)
        model = csf_agreement(hu, result.mri01, result.mask, ct.spacing)
        base = csf_agreement(
            hu, baseline_translation(hu, ct.affine, result.mask, bundle.default_style_key), result.mask, ct.spacing
        )
        rows.append(
            {
                "case": "real head CT",
                "source": "invesalius",
                "csf_share": model.csf_share,
                "weights": digest,
                "model": model.dice,
                "true_t1": float("nan"),
                "baseline": base.dice,
            }
        )
        print(f"{'real head CT':12s} {model.csf_share:6.3f} {model.dice:6.3f} {'-':>7s} {base.dice:8.3f}")
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
