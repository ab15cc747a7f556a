#!/usr/bin/env bash
# The 1 mm models of docs/BENCHMARKS.md ("The 1 mm model") and models/README.md.
#
# Whole slices are 192 x 160 at 1 mm; training sees random 96 x 80 crops of them, so a step costs
# what a 2 mm step costs, and inference runs on whole slices. The windows live in files under the
# run folder, memory-mapped. Learning rate: 200 warm-up steps, then cosine down to 0.1 x 2e-4.
#
#   all            the bundled 1 mm model: the 72 wide pairs of the six training brains
#   minus-s1       the same less S1's 12 pairs (leave one brain out)
#   minus-colin27  the same less Colin27's 12 pairs
#
# STEPS (default 8000) sets the stage's length; INIT=WEIGHTS starts a later stage from committed
# weights (`ct2mri train --init`); RESUME=--resume continues a stopped run.
set -euo pipefail
usage="usage: make_1mm_models.sh all|minus-s1|minus-colin27"
which=${1:?$usage}
train_settings=(--preset demo --batch-size 8 --steps "${STEPS:-8000}" --device cpu --set lr=2e-4
  --set lr_schedule=cosine --set warmup_steps=200 --set min_lr_ratio=0.1 --set "crop=[96,80]"
  --set memory_map=true --set val_every=2000 --set val_steps=3 --set val_corrections=0
  --set checkpoint_every=250 --set log_every=25 --set num_threads=2 --set seed=20261203)
[ -n "${INIT:-}" ] && train_settings+=(--init "$INIT")

[ -f data/lobo_all6/pairs.csv ] || ct2mri -q synthesize -o data/lobo_all6 -n 72 --seed 3000 \
  --source mni,colin27,s1,fsl152,icbm2009c,pydeface --variety wide
case "$which" in
  all) pairs=data/lobo_all6/pairs.csv ;;
  minus-s1 | minus-colin27)
    held=${which#minus-}
    pairs="data/lobo_all6/pairs_minus_$held.csv"
    python "$(dirname "$0")/pairs_without.py" data/lobo_all6/pairs.csv "$pairs" "$held"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
name="${which//-/_}_1mm"
[ -f "data/$name/manifest.json" ] || ct2mri -q preprocess --csv "$pairs" -o "data/$name" --spacing 1 --size 192 160 --no-register
ct2mri -q train "data/$name" -o "runs/$name${STAGE:+_stage$STAGE}" "${train_settings[@]}" ${RESUME:-}
