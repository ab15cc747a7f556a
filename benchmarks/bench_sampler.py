"""Sampler overhead: time per window inside ``sample_volume`` vs a bare batched forward.

    python benchmarks/bench_sampler.py [--preset small] [--slices 32] [--size 96] [--steps 6]

Prints a table; the overhead is everything ``sample_volume`` adds around the network (window
gathering, co-prediction averaging, posterior and correction steps).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from ct2mri_cli.diffusion.sampler import network_evaluations, sample_volume
from ct2mri_cli.network import PRESETS, UNet, network_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    net = UNet(PRESETS[args.preset]).eval()
    denoise = network_denoiser(net)
    z, s = args.slices, args.size
    batch = args.batch_size or z
    ct = torch.rand(z, s, s) * 2 - 1
    style = torch.rand(3, 128)

    x = torch.randn(batch, 3, s, s)
    t = torch.full((batch,), 500)
    styles = style.expand(batch, 3, 128)
    denoise(x, x, t, styles)  # warm-up

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(f"preset {args.preset}, volume {z}x{s}x{s}, batch {batch}, steps {args.steps}")
    print(f"{'mode':<14}{'windows':>9}{'bare ms/win':>13}{'sampler ms/win':>16}{'overhead':>10}")
    for mode in ("independent", "coprediction", "ista"):
        windows = network_evaluations(z, args.steps, 1, mode)
        calls = windows // batch + (1 if windows % batch else 0)
        bare, inside = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(calls):
                denoise(x, x, t, styles)
            bare.append((time.perf_counter() - start) / (calls * batch))
            start = time.perf_counter()
            sample_volume(
                denoise, ct, style, steps=args.steps, corrections=1, step_size=0.5, mode=mode, batch_size=batch
            )
            inside.append((time.perf_counter() - start) / windows)
        b, i = min(bare), min(inside)
        print(f"{mode:<14}{windows:>9}{1e3 * b:>13.3f}{1e3 * i:>16.3f}{100 * (i / b - 1):>9.1f}%")


if __name__ == "__main__":
    main()
