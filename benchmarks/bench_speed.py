"""Translation speed: windows/s and slices/s per network size, batch size, thread count and
execution variant, and the fraction of the machine's matrix-multiply peak the U-Net reaches.

    python benchmarks/bench_speed.py [--device cpu|cuda] [--quick] [--csv speed.csv]

Tables (markdown on stdout, every row also to CSV with a ``table`` column):

* ``peak``: the machine's measured dense matmul rate (fp32 and bf16), the ceiling the U-Net's
  convolutions and attention could at best reach.
* ``throughput``: ``sample_volume`` (ISTA, M = 1) over a random volume with a randomly
  initialised network of each preset; the network's speed does not depend on its weights.
  Windows/s is measured; slices/s follows for the bundled default (10-step ISTA, 19 windows per
  slice) and the paper's setting (50-step ISTA, 99 windows per slice), as does the time of a
  160-slice volume with the paper's setting.  ``floor %`` is FLOPs per window x windows/s over
  the measured matmul peak at the same precision and thread count.
* ``variants``: fp32 vs bf16 autocast vs channels_last vs ``torch.compile`` for one preset, with
  peak GPU memory on CUDA.
* ``translate``: ``Translator.translate`` end to end on the example CT with the bundled model,
  seconds per stage (CPU: per thread count).
* ``paper volume`` (CUDA only, ``--paper-volume``): a 160 x 160 x 160 volume through the
  released-size network with the paper's 50-step ISTA, timed in full.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import torch

from ct2mri_cli.diffusion.sampler import network_evaluations, sample_volume
from ct2mri_cli.network import (
    PRESETS,
    UNet,
    count_parameters,
    forward_flops,
    network_denoiser,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WINDOWS_PER_SLICE = network_evaluations(1, 10, 1, "ista")  # 19
PAPER_WINDOWS_PER_SLICE = network_evaluations(1, 50, 1, "ista")  # 99


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, seconds: float = 1.0) -> float:
    """Best dense matmul rate (FLOP/s) over repeated size x size products."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        start = time.perf_counter()
        a @ b
        synchronize(device)
        elapsed = time.perf_counter() - start
        spent += elapsed
        best = max(best, 2.0 * size**3 / elapsed)
    return best


def time_sampler(
    denoise, device: torch.device, height: int, width: int, batch: int, min_windows: int, steps: int = 2
) -> tuple[float, int]:
    """Seconds and windows of one ISTA ``sample_volume`` call sized to at least ``min_windows`` windows."""
    per_slice = network_evaluations(1, steps, 1, "ista")
    slices = max(batch, -(-min_windows // per_slice))
    ct = torch.rand(slices, height, width, device=device) * 2 - 1
    style = torch.rand(3, 128, device=device)
    windows = network_evaluations(slices, steps, 1, "ista")
    synchronize(device)
    start = time.perf_counter()
    sample_volume(denoise, ct, style, steps=steps, corrections=1, step_size=0.5, mode="ista", batch_size=batch)
    synchronize(device)
    return time.perf_counter() - start, windows


def warm_up(denoise, device: torch.device, height: int, width: int, batch: int) -> None:
    x = torch.zeros(batch, 3, height, width, device=device)
    t = torch.full((batch,), 500, device=device)
    style = torch.zeros(batch, 3, 128, device=device)
    denoise(x, x, t, style)
    synchronize(device)


def throughput_row(
    preset: str,
    height: int,
    width: int,
    batch: int,
    threads: int | None,
    device: torch.device,
    peak: float,
    flops: float,
    min_windows: int,
    variant: str = "fp32",
) -> dict:
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    network = UNet(PRESETS[preset]).to(device).eval()
    autocast = torch.bfloat16 if "bf16" in variant else None
    channels_last = "channels_last" in variant
    compile_seconds = 0.0
    if "compile" in variant:
        network = torch.compile(network)
    start = time.perf_counter()
    denoise = network_denoiser(network, autocast_dtype=autocast, channels_last=channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm_up(denoise, device, height, width, batch)
    if "compile" in variant:
        compile_seconds = time.perf_counter() - start
    seconds, windows = min(time_sampler(denoise, device, height, width, batch, min_windows) for _ in range(2))
    rate = windows / seconds
    return {
        "preset": preset,
        "params_m": count_parameters(network) / 1e6,
        "size": f"{height}x{width}",
        "batch": batch,
        "threads": threads if threads is not None else "",
        "variant": variant,
        "windows": windows,
        "windows_per_s": rate,
        "ms_per_window": 1e3 / rate,
        "slices_per_s_default": rate / DEFAULT_WINDOWS_PER_SLICE,
        "slices_per_s_paper": rate / PAPER_WINDOWS_PER_SLICE,
        "paper_160_slices_s": 160 * PAPER_WINDOWS_PER_SLICE / rate,
        "gflop_per_window": flops / 1e9,
        "floor_pct": 100.0 * flops * rate / peak,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else "",
        "compile_s": compile_seconds if "compile" in variant else "",
    }


def translate_rows(device: torch.device, threads_list: list[int | None]) -> list[dict]:
    from ct2mri_cli.bundled import default_weights
    from ct2mri_cli.inference.translator import Translator
    from ct2mri_cli.io.volumes import read_volume
    from ct2mri_cli.weights import load_weights

    bundle = load_weights(default_weights())
    ct = read_volume(ROOT / "examples" / "example_ct.nii.gz")
    s = bundle.sampling
    translator = Translator(bundle, device, s)
    rows = []
    for threads in threads_list:
        if threads is not None:
            torch.set_num_threads(threads)
        start = time.perf_counter()
        result = translator.translate(ct, bundle.default_style_key)
        total = time.perf_counter() - start
        z = result.ct_model01.shape[0]
        sampling = result.seconds["sampling"]
        rows.append(
            {
                "case": "examples/example_ct.nii.gz",
                "model_grid": "x".join(map(str, result.ct_model01.shape)),
                "threads": threads if threads is not None else "",
                "batch": result.batch_size,
                "sampler": f"{s.mode} S={s.steps} M={s.corrections}",
                "windows": result.evaluations,
                "brain_mask_s": result.seconds["brain_mask"],
                "to_model_grid_s": result.seconds["to_model_grid"],
                "sampling_s": sampling,
                "to_native_grid_s": result.seconds["to_native_grid"],
                "total_s": total,
                "windows_per_s": result.evaluations / sampling,
                "slices_per_s": z / sampling,
            }
        )
    return rows


def markdown(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header for header, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for _, key in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |", flush=True)


THROUGHPUT_COLUMNS = [
    ("preset", "preset"),
    ("params (M)", "params_m"),
    ("window", "size"),
    ("batch", "batch"),
    ("threads", "threads"),
    ("variant", "variant"),
    ("GFLOP/window", "gflop_per_window"),
    ("windows/s", "windows_per_s"),
    ("ms/window", "ms_per_window"),
    ("slices/s, 10-step ISTA", "slices_per_s_default"),
    ("slices/s, 50-step ISTA", "slices_per_s_paper"),
    ("160 slices, 50-step ISTA (s)", "paper_160_slices_s"),
    ("floor %", "floor_pct"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a few rows only (checks the script runs)")
    parser.add_argument("--paper-volume", action="store_true", help="CUDA: time 160^3 with the released network")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    max_threads = torch.get_num_threads()
    threads_list: list[int | None] = [None] if cuda else sorted({1, max_threads})
    machine = torch.cuda.get_device_name(device) if cuda else f"{cpu_name()}, {max_threads} threads"
    if cuda:
        # cuDNN runs fp32 convolutions in TF32 by default; let matmuls (and the peak) do the same,
        # so "fp32" rows and their floor compare like with like.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        machine += " (fp32 = TF32 tensor cores)"
    print(f"machine: {machine}; {platform.machine()}, torch {torch.__version__}")

    all_rows: list[dict] = []

    # Peak matmul rates, per precision and thread count.
    peaks: dict[tuple[int | None, str], float] = {}
    peak_rows = []
    for threads in threads_list:
        if threads is not None:
            torch.set_num_threads(threads)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            peaks[(threads, name)] = matmul_peak(device, dtype, seconds=0.3 if args.quick else 1.5)
            peak_rows.append(
                {
                    "table": "peak",
                    "threads": threads if threads is not None else "",
                    "dtype": name,
                    "gflop_per_s": peaks[(threads, name)] / 1e9,
                }
            )
    markdown(
        "Matmul peak (2048 x 2048)", peak_rows, [("threads", "threads"), ("dtype", "dtype"), ("GFLOP/s", "gflop_per_s")]
    )
    all_rows += peak_rows

    # Networks, window sizes, batches and threads, run the way translate runs them by default.
    default_variant, precision = ("channels_last+bf16", "bf16") if cuda else ("channels_last", "fp32")
    if args.quick:
        plan = [("demo", 96, 80, [4], threads_list[-1:], 16)]
    elif cuda:
        plan = [
            ("demo", 96, 80, [32, 128], threads_list, 2000),
            ("small", 192, 160, [32, 128], threads_list, 2000),
            ("released", 160, 160, [1, 8, 32], threads_list, 200),
        ]
    else:
        top = threads_list[-1:]
        plan = [
            ("demo", 96, 80, [1, 4, 8, 16, 32], threads_list, 192),
            ("demo", 192, 160, [8, 32], top, 96),
            ("small", 96, 80, [1, 8, 32], threads_list, 192),
            ("small", 192, 160, [8, 32], top, 64),
            ("released", 160, 160, [1, 4], top, 4),
        ]
    rows = []
    for preset, height, width, batches, threads_for, min_windows in plan:
        flops = forward_flops(PRESETS[preset], height, width)
        for threads in threads_for:
            for batch in batches:
                row = throughput_row(
                    preset,
                    height,
                    width,
                    batch,
                    threads,
                    device,
                    peaks[(threads, precision)],
                    flops,
                    min_windows,
                    default_variant,
                )
                rows.append({"table": "throughput", **row})
                print(
                    f"  {preset} {height}x{width} batch {batch} threads {threads}: "
                    f"{row['windows_per_s']:.3g} windows/s",
                    flush=True,
                )
    markdown(f"Throughput ({default_variant}, ISTA M = 1)", rows, THROUGHPUT_COLUMNS)
    all_rows += rows

    # Execution variants for one network.
    preset, height, width, batch = ("small", 192, 160, 32) if cuda else ("demo", 96, 80, 8)
    variants = [
        "fp32",
        "bf16",
        "channels_last",
        "channels_last+bf16",
        "compile",
        "compile+channels_last",
        "compile+channels_last+bf16",
    ]
    if args.quick:
        batch, variants = 4, ["fp32", "bf16"]
    threads = threads_list[-1]
    flops = forward_flops(PRESETS[preset], height, width)
    rows = []
    for variant in variants:
        peak = peaks[(threads, "bf16" if "bf16" in variant else "fp32")]
        try:
            row = throughput_row(
                preset, height, width, batch, threads, device, peak, flops, 16 if args.quick else 128, variant
            )
        except Exception as error:  # torch.compile needs a working compiler tool chain
            print(f"{variant}: failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            continue
        rows.append({"table": "variants", **row})
    markdown(
        f"Variants ({preset}, {height}x{width}, batch {batch})",
        rows,
        THROUGHPUT_COLUMNS[5:] + [("peak GPU memory (GiB)", "peak_memory_gib"), ("compile (s)", "compile_s")],
    )
    all_rows += rows

    # End to end on the example CT with the bundled model.
    if not args.quick:
        rows = [{"table": "translate", **row} for row in translate_rows(device, threads_list)]
        markdown(
            "translate, bundled model, examples/example_ct.nii.gz",
            rows,
            [
                ("model grid", "model_grid"),
                ("threads", "threads"),
                ("batch", "batch"),
                ("sampler", "sampler"),
                ("windows", "windows"),
                ("brain mask (s)", "brain_mask_s"),
                ("to model grid (s)", "to_model_grid_s"),
                ("sampling (s)", "sampling_s"),
                ("to native grid (s)", "to_native_grid_s"),
                ("total (s)", "total_s"),
                ("windows/s", "windows_per_s"),
                ("slices/s", "slices_per_s"),
            ],
        )
        all_rows += rows

    if args.paper_volume and cuda:
        torch.manual_seed(0)
        network = UNet(PRESETS["released"]).to(device).eval()
        denoise = network_denoiser(network, autocast_dtype=torch.bfloat16, channels_last=True)
        warm_up(denoise, device, 160, 160, 32)
        torch.cuda.reset_peak_memory_stats(device)
        ct = torch.rand(160, 160, 160, device=device) * 2 - 1
        synchronize(device)
        start = time.perf_counter()
        sample_volume(
            denoise,
            ct,
            torch.rand(3, 128, device=device),
            steps=50,
            corrections=1,
            step_size=0.5,
            mode="ista",
            batch_size=32,
        )
        synchronize(device)
        row = {
            "table": "paper volume",
            "preset": "released",
            "variant": "channels_last+bf16",
            "batch": 32,
            "windows": network_evaluations(160, 50, 1, "ista"),
            "total_s": time.perf_counter() - start,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        }
        markdown(
            "160 x 160 x 160, released network, 50-step ISTA",
            [row],
            [
                ("variant", "variant"),
                ("batch", "batch"),
                ("windows", "windows"),
                ("seconds", "total_s"),
                ("peak GPU memory (GiB)", "peak_memory_gib"),
            ],
        )
        all_rows.append(row)

    if args.csv:
        columns: list[str] = []
        for row in all_rows:
            columns += [key for key in row if key not in columns]
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(all_rows)


if __name__ == "__main__":
    main()
