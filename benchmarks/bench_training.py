"""Training throughput: samples/s of ``ct2mri train`` per preset and device, and time outside the network.

    python benchmarks/bench_training.py [--presets small,released] [--size 96] [--steps 20,3]
                                        [--batch-size 8,2] [--devices cpu,cuda] [--threads 0]

Runs the real training loop on a synthetic preprocessed folder (phantom pairs of the given
in-plane size) and reads its ``log.jsonl``: samples/s and the phase fractions exclude the first
logged interval (warm-up).  "outside" is the fraction of step time spent in data preparation,
the EMA update and logging, i.e. outside the network's forward/backward and the optimiser step.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ct2mri_cli.network import PRESETS, UNet, count_parameters
from ct2mri_cli.training import config_from_dict, train
from ct2mri_cli.training.monitor import read_log
from tests.training_helpers import write_dataset


def _list(text: str, cast=str) -> list:
    return [cast(v) for v in text.split(",") if v]


def measure(run: Path, data: Path, preset: str, device: str, steps: int, batch: int, threads: int) -> dict:
    log_every = max(steps // 5, 1)
    config = config_from_dict(
        {
            "data_dir": str(data),
            "preset": preset,
            "device": device,
            "steps": steps,
            "batch_size": batch,
            "val_subjects": 0,
            "val_every": 0,
            "checkpoint_every": 0,
            "log_every": log_every,
            "num_threads": threads,
        }
    )
    train(config, run, quiet=True)
    records = [r for r in read_log(run / "log.jsonl") if r["kind"] == "train"][1:]
    seconds = sum(r["seconds"] for r in records)
    samples = sum((r["step"] - prev["step"]) * batch for prev, r in zip([{"step": log_every}] + records, records))
    phase = {k: sum(r["time"][k] * r["seconds"] for r in records) / seconds for k in records[0]["time"]}
    return {"samples_per_s": samples / seconds, "step_s": seconds / (samples / batch), **phase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,released")
    parser.add_argument("--size", type=int, default=96, help="in-plane size of the phantom data (pixels)")
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--steps", default="20,3", help="steps per preset (at least 2 logged intervals)")
    parser.add_argument("--batch-size", default="8,2", help="windows per step, per preset")
    parser.add_argument("--devices", default=None, help="default: cpu, and cuda when available")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()

    presets = _list(args.presets)
    steps = _list(args.steps, int)
    batches = _list(args.batch_size, int)
    devices = _list(args.devices) if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if len(steps) != len(presets) or len(batches) != len(presets):
        parser.error("--steps and --batch-size need one value per preset")

    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"threads {args.threads or torch.get_num_threads()}"
        + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
    )
    print(f"data: phantom pairs {args.slices} x {args.size} x {args.size}")
    header = (
        f"{'device':<8}{'preset':<10}{'params':>9}{'batch':>7}{'steps':>7}{'samples/s':>11}{'s/step':>9}"
        f"{'data':>7}{'net':>7}{'optim':>7}{'ema':>7}{'log':>7}{'outside':>9}"
    )
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_dataset(work / "pairs", n_cases=2, shape=(args.slices, args.size, args.size))
        for device in devices:
            for i, (preset, n, batch) in enumerate(zip(presets, steps, batches)):
                run = work / f"run-{device.replace(':', '')}-{i}"
                r = measure(run, data, preset, device, n, batch, args.threads)
                outside = r["data"] + r["ema"] + r["log"]
                params = count_parameters(UNet(PRESETS[preset])) / 1e6
                print(
                    f"{device:<8}{preset:<10}{params:>8.1f}M{batch:>7}{n:>7}{r['samples_per_s']:>11.2f}"
                    f"{r['step_s']:>9.3f}{r['data']:>7.1%}{r['network']:>7.1%}{r['optimizer']:>7.1%}"
                    f"{r['ema']:>7.1%}{r['log']:>7.1%}{outside:>9.1%}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
