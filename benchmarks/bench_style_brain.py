"""The style key of a whole-head T1 against the key of its true brain (W1), and the brain found.

    python benchmarks/bench_style_brain.py [DATA_DIR] [--cases N] [--sources colin27,sri24,...] [--csv FILE]

Heads: the T1s of a ``ct2mri synthesize`` folder (true brain: the pair's intracranial mask) and
the whole-head source brains that ship a brain of their own (Colin27's ``ch2bet``, SRI24's
skull-stripped T1, the ICBM 2009c and FSL MNI152 masks).  For each head: W1 between
``mri_style_key(head)`` (brain found by ``ct2mri_cli.style.brain``) and ``mri_style_key(head,
brain)``; the "floor" W1 of the same head key recipe run over the true brain (what a perfect
brain finder would still differ by); the found brain's Dice and volume; seconds.  Only W1, no
translation (``bench_inputs.py`` carries keys through ``translate``).

``--oracle-scale`` asks what the right size alone would give: the rigidly registered template
brain is scaled about its centre to the true brain's volume (known here, not to a user) before
the bright rim is cut, then keyed the same way.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from bench_brainmask import read_pairs, write_rows  # benchmarks/ is on the path when run as a script

from ct2mri_cli.io.volumes import Volume, read_volume
from ct2mri_cli.style.brain import find_brain
from ct2mri_cli.style.key import key_distance
from ct2mri_cli.style.sources import found_brain_key, mri_style_key

SOURCES_WITH_A_BRAIN = ("colin27", "sri24", "icbm2009c", "fsl152")


def source_heads(names: list[str], folder: Path) -> list[tuple[str, Path, Path]]:
    """Each named whole-head source written as (name, head T1, true brain mask) files."""
    from ct2mri_cli.data.sources import load_source, source_missing

    heads = []
    for name in names:
        if source_missing(name):
            print(f"{name}: skipped ({source_missing(name)})")
            continue
        source = load_source(name)
        head, mask = folder / f"{name}_head.nii.gz", folder / f"{name}_brain.nii.gz"
        nib.save(nib.Nifti1Image(source.t1.astype(np.float32), source.affine), str(head))
        nib.save(nib.Nifti1Image(source.brain.astype(np.uint8), source.affine), str(mask))
        heads.append((name, head, mask))
    return heads


def brain_scaled_to(volume: Volume, true_ml: float) -> np.ndarray:
    """The style brain's rigid registration, its template brain scaled about its centre to
    ``true_ml`` (the volume before the rim cut), less the bright rim."""
    import SimpleITK as sitk

    from ct2mri_cli.io.images import resample_onto_grid, sitk_from_array
    from ct2mri_cli.style.brain import fit_template, without_bright_rim

    data = np.asarray(volume.data, dtype=np.float32)
    rigid, _, template_mask = fit_template(volume, sitk_from_array(data, volume.affine))
    registered = resample_onto_grid(template_mask, volume.shape, volume.affine, rigid, "linear", 0.0) > 0.5
    factor = (true_ml / (float(registered.sum()) * float(np.prod(volume.spacing)) / 1000.0)) ** (1.0 / 3.0)
    centre_ras = (np.asarray(volume.affine) @ np.append(np.argwhere(registered).mean(axis=0), 1.0))[:3]
    scaling = sitk.ScaleTransform(3, [1.0 / factor] * 3)
    scaling.SetCenter([float(v) for v in centre_ras * np.array([-1.0, -1.0, 1.0])])  # ITK points are LPS
    both = sitk.CompositeTransform(rigid)
    both.AddTransform(scaling)  # applied first: a grid point is scaled, then mapped into the template
    scaled = resample_onto_grid(template_mask, volume.shape, volume.affine, both, "linear", 0.0) > 0.5
    return without_bright_rim(data, scaled, volume.affine)


def score(name: str, head: Path, mask: Path, oracle_scale: bool = False) -> dict:
    truth = np.asarray(read_volume(mask).data) > 0
    volume = read_volume(head)
    ml = float(np.prod(volume.spacing)) / 1000.0
    start = time.perf_counter()
    found = brain_scaled_to(volume, float(truth.sum()) * ml) if oracle_scale else find_brain(volume).mask
    head_key = found_brain_key(volume, found)
    seconds = time.perf_counter() - start
    brain_key = mri_style_key(head, mask)
    return {
        "head": name,
        "w1_head_brain": key_distance(head_key, brain_key),
        "w1_floor": key_distance(found_brain_key(volume, truth), brain_key),
        "dice": 2.0 * float((found & truth).sum()) / float(found.sum() + truth.sum()),
        "found_ml": float(found.sum()) * ml,
        "true_ml": float(truth.sum()) * ml,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?", default=None)
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--sources", default=",".join(SOURCES_WITH_A_BRAIN))
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--oracle-scale", action="store_true", help="scale the rigid brain to the true volume")
    args = parser.parse_args()
    print(f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}")
    print(f"{'head':24s} {'W1':>7s} {'floor':>7s} {'dice':>6s} {'found mL':>9s} {'true mL':>8s} {'s':>6s}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        heads = [
            (f"{p['case']}:{p['source']}", args.data / p["mri"], args.data / p["mask"])
            for p in (read_pairs(args.data, args.cases) if args.data else [])
        ]
        heads += source_heads([s for s in args.sources.split(",") if s], Path(scratch))
        for name, head, mask in heads:
            row = score(name, head, mask, args.oracle_scale)
            rows.append(row)
            print(
                f"{name:24s} {row['w1_head_brain']:7.4f} {row['w1_floor']:7.4f} {row['dice']:6.3f} "
                f"{row['found_ml']:9.0f} {row['true_ml']:8.0f} {row['seconds']:6.1f}",
                flush=True,
            )
    w1 = [r["w1_head_brain"] for r in rows]
    print(
        f"W1 head vs brain: mean {np.mean(w1):.4f}, max {max(w1):.4f}, {sum(w <= 0.02 for w in w1)}/{len(w1)} within 0.02"
    )
    if args.csv:
        write_rows(args.csv, rows)


if __name__ == "__main__":
    main()
