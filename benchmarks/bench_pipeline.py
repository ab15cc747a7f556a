"""The pipelined batch: share of wall time spent sampling over a batch of CTs, with and without it.

    python benchmarks/bench_pipeline.py [--cases 10] [--steps 3]

The real head CT (Cranium.inv3, or the example CT when it is not installed), written as
``--cases`` NIfTI files, translated by the bundled model (co-prediction, ``--steps``) through
:func:`ct2mri_cli.inference.cohort.translate_cohort`: once with the stages one after another,
once pipelined (the next case read and put on the model grid, the last one written, while a
case samples).  Prints a table: wall time, time inside sampling, its share, and one case's
preparation (read, checks, brain, pose, model grid) for the target "at most sampling plus one
case's preparation".
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ct2mri_cli.bundled import default_weights
from ct2mri_cli.inference.cohort import StyleBook, translate_cohort
from ct2mri_cli.inference.jobs import plan_jobs
from ct2mri_cli.inference.translator import Translator
from ct2mri_cli.io.cases import CaseSpec
from ct2mri_cli.io.volumes import read_volume, write_nifti
from ct2mri_cli.weights import load_weights

REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
EXAMPLE_CT = Path(__file__).resolve().parents[1] / "examples" / "example_ct.nii.gz"


def write_cases(source: Path, folder: Path, count: int) -> list[CaseSpec]:
    """``count`` copies of one CT as NIfTI cases."""
    ct = read_volume(source)
    specs = []
    for i in range(count):
        path = folder / f"case{i:02d}.nii.gz"
        write_nifti(ct.data.astype(np.int16), path, ct, dtype=np.int16)
        specs.append(CaseSpec(f"case{i:02d}", path))
    return specs


def measure(specs: list[CaseSpec], translator: Translator, out: Path, pipelined: bool) -> tuple[float, float]:
    """(wall seconds, seconds inside sampling) of one batch."""
    jobs = plan_jobs(specs, out, None, None)
    result = translate_cohort(
        jobs, translator, StyleBook(None, translator.bundle.default_style_key), pipelined=pipelined
    )
    assert not result.outcome.failures, result.outcome.failures
    return result.wall_seconds, result.sampling_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    source = REAL_CT if REAL_CT.exists() else EXAMPLE_CT
    bundle = load_weights(default_weights())
    sampling = dataclasses.replace(bundle.sampling, steps=args.steps, mode="coprediction")
    translator = Translator(bundle, torch.device(args.device), sampling)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        specs = write_cases(source, tmp / "cases", args.cases)
        started = time.perf_counter()
        view = translator.prepare(read_volume(specs[0].ct))
        preparation = time.perf_counter() - started
        print(
            f"{platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"{args.device}; {args.cases} x {source.name}, model grid {view.ct_model01.shape}, co-prediction S={args.steps}\n"
        )
        print("| batch | wall (s) | sampling (s) | sampling share | one case's preparation (s) | wall - sampling (s) |")
        print("|---|---|---|---|---|---|")
        for label, pipelined in (("one stage after another", False), ("pipelined", True)):
            wall, sampling_s = measure(specs, translator, tmp / label.replace(" ", "_"), pipelined)
            print(
                f"| {label} | {wall:.1f} | {sampling_s:.1f} | {100 * sampling_s / wall:.1f}% | "
                f"{preparation:.1f} | {wall - sampling_s:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
