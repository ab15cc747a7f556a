#!/usr/bin/env bash
# The two leave-one-brain-out models of docs/BENCHMARKS.md ("Leave one brain out"), with the
# bundled model's preset, grid, batch, learning rate, seed and step count (8000 steps each,
# 1.5-2 hours each on a 2-core CPU). Run one at a time; `RESUME=--resume` continues a stopped run.
#
#   today's data minus Colin27: the 12 MNI pairs of the bundled model's training set;
#   new data minus Colin27 and S1: 60 wide-variety pairs of the population-average brains.
#
# Then score them:
#   python benchmarks/bench_lobo.py --model bundled=models/ct2mri-demo-2mm.safetensors \
#     --model mni-only=runs/lobo_mni/best.safetensors --model new=runs/lobo_wide/best.safetensors \
#     --held-out colin27,s1 --seen mni --csv lobo.csv
set -euo pipefail
which=${1:?usage: make_lobo_models.sh mni|wide}
train_settings=(--preset demo --batch-size 8 --steps 8000 --device cpu --set lr=2e-4 --set val_every=2000
  --set val_steps=10 --set checkpoint_every=250 --set log_every=25 --set num_threads=2 --set seed=20261124)
case "$which" in
  mni)
    [ -f data/synth/pairs.csv ] || ct2mri -q synthesize -o data/synth -n 24 --seed 1000 --source both
    python - <<'PY'
import csv
rows = list(csv.DictReader(open("data/synth/pairs.csv")))
with open("data/synth/pairs_mni.csv", "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(row for row in rows if row["source"] == "mni")
PY
    [ -f data/lobo_mni2mm/manifest.json ] || ct2mri -q preprocess --csv data/synth/pairs_mni.csv -o data/lobo_mni2mm \
      --spacing 2 --size 96 80 --no-register
    ct2mri -q train data/lobo_mni2mm -o runs/lobo_mni "${train_settings[@]}" ${RESUME:-}
    ;;
  wide)
    [ -f data/lobo_wide/pairs.csv ] || ct2mri -q synthesize -o data/lobo_wide -n 60 --seed 2000 \
      --source mni,fsl152,icbm2009c,pydeface --variety wide
    [ -f data/lobo_wide2mm/manifest.json ] || ct2mri -q preprocess --csv data/lobo_wide/pairs.csv -o data/lobo_wide2mm \
      --spacing 2 --size 96 80 --no-register
    ct2mri -q train data/lobo_wide2mm -o runs/lobo_wide "${train_settings[@]}" ${RESUME:-}
    ;;
  *) echo "usage: make_lobo_models.sh mni|wide" >&2; exit 2 ;;
esac
