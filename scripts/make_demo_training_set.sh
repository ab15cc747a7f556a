#!/usr/bin/env bash
# Rebuild the previous bundled model, models/previous/ct2mri-demo-2mm.safetensors, from scratch:
# its exact commands, seeds and settings (about an hour on a 2-core CPU).
set -euo pipefail
ct2mri -q synthesize -o data/synth -n 24 --seed 1000 --source both
ct2mri -q preprocess --csv data/synth/pairs.csv -o data/demo2mm --spacing 2 --size 96 80 --no-register --frame native
ct2mri -q train data/demo2mm -o runs/demo --preset demo --batch-size 8 --steps 8000 --device cpu \
  --set lr=2e-4 --set val_every=2000 --set val_steps=10 --set checkpoint_every=250 \
  --set log_every=25 --set num_threads=2 --set seed=20261124
cp runs/demo/best.safetensors models/previous/ct2mri-demo-2mm.safetensors
