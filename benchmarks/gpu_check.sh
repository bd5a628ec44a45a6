#!/usr/bin/env bash
# GPU acceptance check: under 8 minutes on one GPU. Steps, each under its own header with its figures:
#   1. the tests marked `cuda` (resumed GPU fits equal uninterrupted ones, GPU probabilities against the CPU's);
#   2. benchmarks/train_step.py: Swin-B (random weights) at 224, batch 64, our loader against device-resident
#      tensors; the goal is a ratio of at least 0.95x;
#   3. benchmarks/loader_speed.py --device cuda: our batch path against a per-sample DataLoader;
#   4. a short `bench run` on the device: both demo datasets, 4 strategies, 2 seeds, 2 epochs (1 seed on the CPU);
#   5. the same run on the CPU, and the largest absolute difference between the two runs' results (they
#      differ: the GPU computes in bf16 or fp16 and with other kernels).
# With --device cpu, the same steps run on the CPU with smaller sizes, as a smoke test of this script.
#
# Usage: bash benchmarks/gpu_check.sh [--device cuda|cpu]   (PYTHON: the interpreter, default .venv/bin/python)
set -euo pipefail

usage() { echo "usage: bash benchmarks/gpu_check.sh [--device cuda|cpu]" >&2; exit 2; }
device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) [ $# -ge 2 ] || usage; device="$2"; shift 2 ;;
    --device=*) device="${1#--device=}"; shift ;;
    *) usage ;;
  esac
done
[ "$device" = cuda ] || [ "$device" = cpu ] || usage

cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SDBENCH_HOME="${SDBENCH_HOME:-$work/home}"
started=$SECONDS

header() { printf '\n== %s (at %d s) ==\n' "$*" $((SECONDS - started)); }

if [ "$device" = cuda ]; then
  "$python" -c "import sys, torch; sys.exit(None if torch.cuda.is_available() else 'CUDA is not available here; \
for a smoke run on the CPU: bash benchmarks/gpu_check.sh --device cpu')"
  train_step=(--backbone swin-b --size 224 --batch 64 --steps 30 --repeats 2)
  loader=()
  run_config="datasets: [demo-phases, demo-triplets]
strategies: [hard, best-val, iee, iese]
image_size: 48
seeds: [0, 1]"
else
  train_step=(--backbone tiny --size 32 --batch 8 --steps 3 --repeats 1)
  loader=(--frames 128 --repeats 1)
  run_config="datasets: [demo-phases]
strategies: [hard, iese]
image_size: 32
dataset_options: {demo-phases: {num_videos: 6}}
seeds: [0]"
fi
printf '%s\nteacher: {epochs: 2}\nstudent: {epochs: 2}\n' "$run_config" > "$work/run.yaml"

header "1. tests marked cuda ($device)"
# only the files that hold tests marked cuda: collecting the whole suite costs more than running these
mapfile -t cuda_tests < <(grep -l "pytest.mark.cuda" tests/test_*.py)
"$python" -m pytest -q -m cuda -p no:cacheprovider "${cuda_tests[@]}"

header "2. train step: our loader against device-resident tensors ($device)"
"$python" benchmarks/train_step.py --device "$device" "${train_step[@]}" | tee "$work/train_step.txt"
ratio=$(sed -n 's/.*ratio \([0-9.]*\)x.*/\1/p' "$work/train_step.txt")
goal_met=yes
if [ "$device" = cuda ]; then
  if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.95) }'; then
    echo "goal: ratio >= 0.95x: met (${ratio}x)"
  else
    echo "goal: ratio >= 0.95x: NOT met (${ratio}x)"
    goal_met=no
  fi
fi

header "3. loader: our batch path against a per-sample DataLoader ($device)"
"$python" benchmarks/loader_speed.py --device "$device" "${loader[@]}"

header "4. bench run on $device (tiny: demo data, 2 epochs)"
"$python" -m harness.cli run --config "$work/run.yaml" --out "$work/run-$device" --device "$device" --quiet

header "5. the same run on the CPU, and how far its results are from step 4's"
"$python" -m harness.cli run --config "$work/run.yaml" --out "$work/run-cpu-again" --device cpu --quiet
"$python" - "$work/run-$device" "$work/run-cpu-again" "$device" <<'EOF'
import sys

import pandas as pd

keys = ["dataset", "split", "backbone", "strategy", "seed", "metric"]
first, cpu = (pd.read_csv(f"{run}/results.csv") for run in sys.argv[1:3])
both = first.merge(cpu, on=keys, suffixes=("_first", "_cpu"))
difference = (both.value_first - both.value_cpu).abs()
worst = both.loc[difference.idxmax()]
primary = difference[both.primary_first]
print(f"{len(both)} results in both runs ({len(first)} on {sys.argv[3]}, {len(cpu)} on the CPU); max absolute "
      f"difference {difference.max():.4g} (primary metrics: {primary.max():.4g}; mean over all {difference.mean():.4g}), "
      f"at {worst.strategy} {worst.dataset} seed {worst.seed} {worst.metric}: {worst.value_first:.4f} against "
      f"{worst.value_cpu:.4f}")
EOF

header "done"
if [ "$goal_met" = no ]; then
  echo "the train-step ratio missed its goal (>= 0.95x)" >&2
  exit 1
fi
