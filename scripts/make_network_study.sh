#!/usr/bin/env bash
# The network study of docs/BENCHMARKS.md ("Network size and spatial context"): variants of the
# bundled model's network trained on the new data minus S1 (2 mm, the pairs of
# `make_lobo_models.sh minus-s1`), 4000 steps each with the bundled model's optimiser settings
# (17-26 minutes each on 2 cores of an Intel Xeon), then scored on S1, which none of them saw:
#
#   demo        the bundled network (0.83 M parameters, self-attention in the bottleneck)
#   local       the same without self-attention: spatial context from the convolutions alone
#   shallow     two levels instead of three (one down-sampling) and no self-attention
#   deep        four levels instead of three (3.14 M parameters, 1.3 times the cost)
#
# Score: python benchmarks/bench_lobo.py --held-out s1 --pairs-cache data/lobo_pairs \
#   --model demo=runs/study_demo/model.safetensors --model local=runs/study_local/model.safetensors ...
set -euo pipefail
usage="usage: make_network_study.sh demo|local|shallow|deep"
which=${1:?$usage}
case "$which" in
  demo) network=() ;;
  local) network=(--set network.self_attention=false) ;;
  shallow) network=(--set network.self_attention=false --set "network.channel_mult=[1,2]") ;;
  deep) network=(--set "network.channel_mult=[1,2,4,8]") ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
[ -f data/lobo_all6/pairs.csv ] || ct2mri -q synthesize -o data/lobo_all6 -n 72 --seed 3000 \
  --source mni,colin27,s1,fsl152,icbm2009c,pydeface --variety wide
python "$(dirname "$0")/pairs_without.py" data/lobo_all6/pairs.csv data/lobo_all6/pairs_minus_s1.csv s1
[ -f data/lobo_minus_s1_2mm/manifest.json ] || ct2mri -q preprocess --csv data/lobo_all6/pairs_minus_s1.csv \
  -o data/lobo_minus_s1_2mm --spacing 2 --size 96 80 --no-register
ct2mri -q train data/lobo_minus_s1_2mm -o "runs/study_$which" --preset demo --batch-size 8 --steps 4000 \
  --device cpu --set lr=2e-4 --set val_every=4000 --set val_steps=3 --set val_corrections=0 \
  --set checkpoint_every=250 --set log_every=25 --set num_threads=2 --set seed=20261124 \
  "${network[@]}" ${RESUME:-}
