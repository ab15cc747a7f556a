#!/usr/bin/env bash
# The GPU check: CUDA-marked tests, then benchmarks/gpu_check.py (bf16 vs fp32, timings per
# variant, peak memory, the paper's 160^3 volume, two-GPU runs), in at most 8 minutes.
# On a machine without CUDA it says so and exits 0.
#
#     bash benchmarks/gpu_check.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "no CUDA device: nothing to check (torch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not installed'))"
  exit 0
fi
"$PYTHON" -c 'import torch; print("CUDA:", torch.cuda.get_device_name(), "x", torch.cuda.device_count())'
status=0
echo "== CUDA-marked tests"
timeout 150 "$PYTHON" -m pytest -q -m gpu tests/ -p no:cacheprovider || status=1
echo "== measurements"
timeout 330 "$PYTHON" benchmarks/gpu_check.py "$@" || status=1
exit $status
