#!/usr/bin/env bash
# The leave-one-brain-out models of docs/BENCHMARKS.md ("Leave one brain out"), with the bundled
# model's preset, grid, batch, learning rate, seed and step count (8000 steps each, 1.5-2 hours
# each on a 2-core AMD EPYC, 46 minutes on a 2-core Intel Xeon). Run one at a time; `RESUME=--resume` continues a stopped run.
#
#   mni            today's data minus Colin27: the 12 MNI pairs of the bundled model's training set
#   wide           new data minus Colin27 and S1: 60 wide pairs of the population-average brains
#   minus-colin27  new data minus Colin27: 72 wide pairs of the six training brains, less Colin27's
#   minus-s1       new data minus S1: the same 72 pairs, less S1's
#   all            the bundled model: all 72 pairs (its leave-one-brain-out rows are minus-colin27
#                  and minus-s1, made with the same recipe)
#   all-stage2     4000 more steps of the bundled model on the same pairs, from its committed
#                  weights (--init), lr 2e-4 cosine down to 2e-5 after 200 warm-up steps; seed
#                  20261224 holds out the same validation pair (case_0033) and draws new batches
#
# Then score them on the same cases (the pairs are made once and kept in data/lobo_pairs):
#   python benchmarks/bench_lobo.py --model bundled=models/previous/ct2mri-demo-2mm.safetensors \
#     --model mni-only=runs/lobo_mni/model.safetensors --model new=runs/lobo_minus_colin27/model.safetensors \
#     --held-out colin27 --seen mni --pairs-cache data/lobo_pairs --csv lobo.csv
#   (and again with --variety wide; S1 with runs/lobo_minus_s1 and runs/lobo_wide)
set -euo pipefail
usage="usage: make_lobo_models.sh mni|wide|minus-colin27|minus-s1|all|all-stage2"
which=${1:?$usage}
train_settings=(--preset demo --batch-size 8 --steps 8000 --device cpu --set lr=2e-4 --set val_every=2000
  --set val_steps=10 --set checkpoint_every=250 --set log_every=25 --set num_threads=2 --set seed=20261124)

train_on() {  # train_on PAIRS.csv NAME: preprocess to data/NAME2mm, train into runs/NAME
  [ -f "data/$2_2mm/manifest.json" ] || ct2mri -q preprocess --csv "$1" -o "data/$2_2mm" --spacing 2 --size 96 80 --no-register
  ct2mri -q train "data/$2_2mm" -o "runs/$2" "${train_settings[@]}" ${RESUME:-}
}

case "$which" in
  mni)
    [ -f data/synth/pairs.csv ] || ct2mri -q synthesize -o data/synth -n 24 --seed 1000 --source both
    python "$(dirname "$0")/pairs_without.py" data/synth/pairs.csv data/synth/pairs_mni.csv colin27
    train_on data/synth/pairs_mni.csv lobo_mni
    ;;
  wide)
    [ -f data/lobo_wide/pairs.csv ] || ct2mri -q synthesize -o data/lobo_wide -n 60 --seed 2000 \
      --source mni,fsl152,icbm2009c,pydeface --variety wide
    train_on data/lobo_wide/pairs.csv lobo_wide
    ;;
  all-stage2)
    [ -f data/lobo_all_2mm/manifest.json ] || { echo "run make_lobo_models.sh all first" >&2; exit 2; }
    ct2mri -q train data/lobo_all_2mm -o runs/lobo_all_stage2 "${train_settings[@]}" --init models/ct2mri-2mm.safetensors \
      --steps 4000 --set seed=20261224 --set lr_schedule=cosine --set warmup_steps=200 --set min_lr_ratio=0.1 ${RESUME:-}
    ;;
  minus-colin27 | minus-s1 | all)
    [ -f data/lobo_all6/pairs.csv ] || ct2mri -q synthesize -o data/lobo_all6 -n 72 --seed 3000 \
      --source mni,colin27,s1,fsl152,icbm2009c,pydeface --variety wide
    if [ "$which" = all ]; then train_on data/lobo_all6/pairs.csv lobo_all; exit; fi
    held=${which#minus-}
    python "$(dirname "$0")/pairs_without.py" data/lobo_all6/pairs.csv "data/lobo_all6/pairs_minus_$held.csv" "$held"
    train_on "data/lobo_all6/pairs_minus_$held.csv" "lobo_minus_$held"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
