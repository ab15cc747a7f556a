"""Copy a weights file with other sampler defaults (what ``translate`` uses without options).

    python scripts/set_default_sampler.py runs/lobo_all/model.safetensors models/ct2mri-2mm.safetensors \
        --sampler coprediction --steps 5

The network, bridge, preprocessing and default key are copied unchanged (the tensor digest stays
the same); the settings not named keep the source file's values.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ct2mri_cli.errors import Ct2mriError
from ct2mri_cli.settings import SAMPLER_MODES
from ct2mri_cli.weights import load_weights, save_weights


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--sampler", choices=SAMPLER_MODES)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--corrections", type=int)
    parser.add_argument("--step-size", type=float)
    args = parser.parse_args(argv)
    bundle = load_weights(args.source)
    sampling = bundle.sampling.with_overrides(args.steps, args.corrections, args.step_size, args.sampler)
    try:
        sampling.check(bundle.bridge.num_timesteps)
    except Ct2mriError as error:
        sys.exit(f"error: {error}")
    provenance = {**bundle.provenance, "sampling_set_from": f"{bundle.sampling.mode} S={bundle.sampling.steps}"}
    digest = save_weights(args.output, dataclasses.replace(bundle, sampling=sampling, provenance=provenance))
    print(f"wrote {args.output} (sha256 {digest[:12]}): {sampling.mode}, S = {sampling.steps}")


if __name__ == "__main__":
    main()
