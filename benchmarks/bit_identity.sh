#!/usr/bin/env bash
# sha256 of what the main commands write, to show a refactor changes no output:
# the example CT and the real head CT translated, and a synthesize + preprocess + 6-step training run.
# Usage: bash benchmarks/bit_identity.sh OUTDIR   (about 5 min on 2 CPU cores)
# Registration repeats exactly only on one ITK thread: preprocess runs with --threads 1.
set -euo pipefail
out=${1:?usage: bit_identity.sh OUTDIR}
real_ct=/usr/share/doc/invesalius-examples/examples/Cranium.inv3
rm -rf "$out" && mkdir -p "$out"
export OMP_NUM_THREADS=2
ct2mri -q translate examples/example_ct.nii.gz "$out/example_t1.nii.gz" --threads 2
ct2mri -q translate "$real_ct" "$out/real_t1.nii.gz" --threads 2
ct2mri -q synthesize -o "$out/synth" -n 2 --seed 5 --source colin27
ct2mri -q preprocess --csv "$out/synth/pairs.csv" -o "$out/prep" --spacing 4 --size 48 40 --threads 1
ct2mri -q train "$out/prep" -o "$out/run" --preset demo --batch-size 2 --steps 6 --device cpu \
  --set seed=3 --set num_threads=2 --set val_every=6 --set checkpoint_every=6
cd "$out"
sha256sum example_t1.nii.gz real_t1.nii.gz synth/case_*/*.nii.gz prep/case_*/*.nii.gz
# safetensors files carry their date in the metadata: hash their tensors
python - prep/case_*/style_key.safetensors run/model.safetensors <<'PY'
import hashlib
import sys
from safetensors.numpy import load_file
for path in sys.argv[1:]:
    tensors = load_file(path)
    digest = hashlib.sha256(b"".join(tensors[name].tobytes() for name in sorted(tensors))).hexdigest()
    print(f"{digest}  {path} (tensors)")
PY
