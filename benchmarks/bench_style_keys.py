"""Do real T1 styles lie among a model's training styles, and does its output follow the key?

    python benchmarks/bench_style_keys.py --data data/lobo_minus_s1_2mm \
        --model bundled=models/ct2mri-2mm.safetensors --csv docs/style_keys.csv

Real keys: Colin27's (``models/keys/colin27``), S1's whole-head T1 (its brain found by
``mri_style_key``) and, with ``--pyradiomics DIR``, the two T1 heads of pyradiomics 3.0.1's source
archive (``data/brain1_image.nrrd``, ``brain2_image.nrrd``; 6.5 mm slices).

Coverage: each real key against the training keys of a preprocessed set (``--data``): the
1-Wasserstein distance to the nearest training key and to their average, as the set is and with
every case restyled by ``--curves`` random contrast curves at each ``--strength``
(:mod:`ct2mri_cli.training.restyle`, the keys a network trained with ``restyle`` sees).

Obedience: each model translates the real head CT (Debian's invesalius-examples) with its
average key, each real key and ``--probe-keys`` restyled training keys (strength 0.8), and the
distance between the key and the histogram of its output (model space, inside the brain) is
measured: 0 for an output whose intensities are distributed exactly as the key asks.
"""

from __future__ import annotations

import argparse
import csv
import platform
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.data.sources import find_source_files
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.volumes import read_volume
from ct2mri_cli.style.key import average_style_keys, key_distance, load_style_key, style_key
from ct2mri_cli.style.sources import mri_style_key
from ct2mri_cli.training import restyle
from ct2mri_cli.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


def real_keys(pyradiomics: Path | None) -> dict[str, torch.Tensor]:
    keys = {"colin27": load_style_key(ROOT / "models/keys/colin27.safetensors")[0]}
    keys["s1 (whole head)"] = mri_style_key(find_source_files("s1")["t1"])
    if pyradiomics is not None:
        for name in ("brain1", "brain2"):
            keys[f"pyradiomics {name} (whole head)"] = mri_style_key(pyradiomics / f"{name}_image.nrrd")
    return keys


def training_counts(folder: Path) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The keys of a preprocessed set and its cases' fine intensity counts."""
    import nibabel as nib

    keys, counts = [], []
    for case in sorted(p for p in folder.iterdir() if (p / "style_key.safetensors").exists()):
        keys.append(load_style_key(case / "style_key.safetensors")[0])
        mri = np.asanyarray(nib.load(str(case / "mri.nii.gz")).dataobj, dtype=np.float32)
        mask = np.asanyarray(nib.load(str(case / "mask.nii.gz")).dataobj) > 0
        counts.append(restyle.value_counts(mri, mask))
    return keys, torch.from_numpy(np.stack(counts))


def restyled(counts: torch.Tensor, curves_per_case: int, strength: float, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(curves_per_case):
        curves = restyle.draw_curves(generator, counts.shape[0], 1.0, strength)
        out.extend(restyle.restyled_keys(counts, curves))
    return out


def coverage(keys: dict[str, torch.Tensor], pools: dict[str, list[torch.Tensor]]) -> list[dict]:
    rows = []
    for pool_name, pool in pools.items():
        average = average_style_keys(pool)
        for name, key in keys.items():
            nearest = min(key_distance(key, k) for k in pool)
            rows.append(
                {
                    "part": "coverage",
                    "pool": pool_name,
                    "key": name,
                    "nearest_w1": round(nearest, 4),
                    "average_w1": round(key_distance(key, average), 4),
                }
            )
            print(f"{pool_name:28s} {name:36s} nearest {nearest:.4f}  average {rows[-1]['average_w1']:.4f}")
    return rows


def obedience(models: dict[str, Path], keys: dict[str, torch.Tensor]) -> list[dict]:
    ct = read_volume(REAL_CT)
    rows = []
    for model_name, path in models.items():
        bundle = load_weights(path)
        translator = Translator(bundle, torch.device("cpu"), bundle.sampling)
        view = translator.prepare(ct)
        for name, key in {"average": bundle.default_style_key, **keys}.items():
            out = translator.translate_view(view, key)
            followed = key_distance(key, style_key(out.mri_model01, out.mask_model))
            rows.append({"part": "obedience", "pool": model_name, "key": name, "output_w1": round(followed, 4)})
            print(f"{model_name:28s} {name:36s} output-to-key W1 {followed:.4f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a preprocessed training set")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=WEIGHTS")
    parser.add_argument("--pyradiomics", type=Path, default=None, help="pyradiomics-3.0.1/data")
    parser.add_argument("--strength", type=float, action="append", default=[])
    parser.add_argument("--curves", type=int, default=20, help="restyling curves per case")
    parser.add_argument("--probe-keys", type=int, default=4, help="restyled keys to translate with")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()

    keys = real_keys(args.pyradiomics)
    train_keys, counts = training_counts(args.data)
    pools = {"training keys": train_keys}
    for strength in args.strength or [0.5, 0.8]:
        pools[f"restyled, strength {strength:g}"] = restyled(counts, args.curves, strength, seed=1)
    rows = coverage(keys, pools)
    probes = restyled(counts[: args.probe_keys], 1, 0.8, seed=2)
    keys |= {f"restyled probe {i}": k for i, k in enumerate(probes)}
    models = {name: Path(path) for name, _, path in (m.partition("=") for m in args.model)}
    if models and REAL_CT.exists():
        rows += obedience(models, keys)
    print(f"\n{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.csv:
        fields = ["part", "pool", "key", "nearest_w1", "average_w1", "output_w1"]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
