"""The GPU check's measurements: one table (see benchmarks/gpu_check.sh, which runs this).

    python benchmarks/gpu_check.py [--quick]

On a CUDA machine: bf16 against fp32 on the example CT (PSNR between the two outputs); the
example CT and the real head CT translated with the bundled model in fp32, bf16, bf16 +
channels_last and bf16 + channels_last + torch.compile (seconds, peak GPU memory); the sampling
share of a batch of 6 with and without the pipeline; one 160 x 160 x 160 volume with the released-size network and the paper's 50-step ISTA; with two or
more GPUs a two-process NCCL training step and a two-process sharded translate under torchrun.
Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CT = ROOT / "examples" / "example_ct.nii.gz"
REAL_CT = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
VARIANTS = {  # name: (precision, channels_last, compile)
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "bf16 + channels_last": ("bf16", True, False),
    "bf16 + channels_last + compile": ("bf16", True, True),
}


def _row(rows: list[dict], check: str, **values: object) -> None:
    rows.append({"check": check, **values})
    print(f"  {check}: " + ", ".join(f"{k} {v}" for k, v in values.items()), file=sys.stderr, flush=True)


def translations(rows: list[dict], quick: bool) -> None:
    from ct2mri_cli.bundled import default_weights
    from ct2mri_cli.evaluation.metrics import psnr
    from ct2mri_cli.inference.translator import Translator
    from ct2mri_cli.io.volumes import read_volume
    from ct2mri_cli.weights import load_weights

    bundle = load_weights(default_weights())
    device = torch.device("cuda")
    cases = {"example CT": EXAMPLE_CT} | ({"real head CT": REAL_CT} if REAL_CT.exists() and not quick else {})
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for case, path in cases.items():
        ct = read_volume(path)
        for variant, (precision, channels_last, compiled) in VARIANTS.items():
            if quick and compiled:
                continue
            translator = Translator(
                dataclasses.replace(bundle),
                device,
                bundle.sampling,
                precision=precision,
                channels_last=channels_last,
                compile=compiled,
            )
            if compiled:
                started = time.perf_counter()
                translator.translate(ct, bundle.default_style_key)  # the first call compiles
                first = time.perf_counter() - started
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            result = translator.translate(ct, bundle.default_style_key)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            outputs[(case, variant)] = result.mri01
            extra = {"first call (s)": f"{first:.1f}"} if compiled else {}
            _row(
                rows,
                f"translate {case}",
                variant=variant,
                seconds=f"{seconds:.2f}",
                sampling_s=f"{result.seconds['sampling']:.2f}",
                windows=result.evaluations,
                peak_gib=f"{torch.cuda.max_memory_allocated() / 2**30:.2f}",
                **extra,
            )
        mask = result.mask
        _row(
            rows, f"bf16 vs fp32, {case}", psnr_db=f"{psnr(outputs[(case, 'bf16')], outputs[(case, 'fp32')], mask):.2f}"
        )


def paper_volume(rows: list[dict]) -> None:
    from ct2mri_cli.diffusion.sampler import network_evaluations, sample_volume
    from ct2mri_cli.network import PRESETS, UNet, network_denoiser

    torch.manual_seed(0)
    network = UNet(PRESETS["released"]).cuda().eval()
    denoise = network_denoiser(network, autocast_dtype=torch.bfloat16, channels_last=True)
    ct = torch.rand(160, 160, 160, device="cuda") * 2 - 1
    style = torch.rand(3, 128, device="cuda")
    sample_volume(denoise, ct[:8], style, steps=2, corrections=0, mode="ista", batch_size=8)  # warm up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    sample_volume(denoise, ct, style, steps=50, corrections=1, step_size=0.5, mode="ista", batch_size=32)
    torch.cuda.synchronize()
    _row(
        rows,
        "160^3, released network, 50-step ISTA",
        seconds=f"{time.perf_counter() - started:.1f}",
        windows=network_evaluations(160, 50, 1, "ista"),
        peak_gib=f"{torch.cuda.max_memory_allocated() / 2**30:.2f}",
    )


def pipeline(rows: list[dict]) -> None:
    """The share of wall time in sampling over 6 example CTs, one stage after another and pipelined."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_pipeline import measure, write_cases
    from ct2mri_cli.bundled import default_weights
    from ct2mri_cli.inference.translator import Translator
    from ct2mri_cli.weights import load_weights

    bundle = load_weights(default_weights())
    translator = Translator(bundle, torch.device("cuda"), bundle.sampling)
    with tempfile.TemporaryDirectory() as folder:
        specs = write_cases(EXAMPLE_CT, Path(folder) / "cases", 6)
        measure(specs[:1], translator, Path(folder) / "warm", pipelined=False)
        for label, pipelined in (("one stage after another", False), ("pipelined", True)):
            wall, sampling = measure(specs, translator, Path(folder) / label.replace(" ", "_"), pipelined)
            _row(
                rows,
                f"batch of 6, {label}",
                wall_s=f"{wall:.1f}",
                sampling_s=f"{sampling:.1f}",
                sampling_share=f"{100 * sampling / wall:.0f}%",
            )


def two_gpus(rows: list[dict]) -> None:
    """A two-process NCCL training step and a two-process sharded translate, each under torchrun."""
    sys.path.insert(0, str(ROOT))
    from tests.training_helpers import write_dataset

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = write_dataset(tmp / "pairs", n_cases=3)
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "ct2mri_cli",
        ]
        for name, arguments in (
            (
                "NCCL training step, 2 processes",
                [
                    "train",
                    str(data),
                    "-o",
                    str(tmp / "run"),
                    "--preset",
                    "tiny",
                    "--device",
                    "cuda",
                    "--steps",
                    "2",
                    "--batch-size",
                    "2",
                ],
            ),
            (
                "sharded translate, 2 processes",
                [
                    "-q",
                    "translate",
                    str(EXAMPLE_CT),
                    str(REAL_CT if REAL_CT.exists() else EXAMPLE_CT),
                    "-o",
                    str(tmp / "out"),
                    "--steps",
                    "3",
                ],
            ),
        ):
            if name.startswith("sharded") and not REAL_CT.exists():
                continue
            started = time.perf_counter()
            done = subprocess.run(
                launcher + arguments, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=240
            )
            written = sorted(p.name for p in (tmp / "out").glob("*_synT1.nii.gz")) if name.startswith("sharded") else []
            _row(
                rows,
                name,
                exit_code=done.returncode,
                seconds=f"{time.perf_counter() - started:.1f}",
                **({"outputs": len(written)} if written else {}),
                **(
                    {"error": done.stderr.strip().splitlines()[-1][:120]}
                    if done.returncode and done.stderr.strip()
                    else {}
                ),
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the example CT only, no torch.compile")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    rows: list[dict] = []
    print(
        f"{torch.cuda.get_device_name()} x {torch.cuda.device_count()}, torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}",
        flush=True,
    )
    steps = [
        ("translations", lambda: translations(rows, args.quick)),
        ("paper volume", lambda: paper_volume(rows)),
        ("pipeline", lambda: pipeline(rows)),
    ]
    if torch.cuda.device_count() >= 2:
        steps.append(("two GPUs", lambda: two_gpus(rows)))
    failed = 0
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # report and go on: one table, as much of it as runs
            failed += 1
            _row(rows, name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    print("\n| check | results |\n|---|---|")
    for row in rows:
        print(f"| {row['check']} | " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "check") + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
