#!/usr/bin/env bash
# The GPU check, in under 8 minutes on one GPU: the CUDA tests (FFT = spatial, gradients, one host sync per
# forward, bf16 autocast), then on CUDA the operations/host syncs/step time of FlexNet-16 and FlexTCN-6 against
# their 3-tap twins, FlexNet-16 with cropping on vs off, FlexNet-16 and its twin compiled (torch.compile) vs eager,
# and a short path-choice sweep in the time that is left. Everything goes to
# results/benchmarks/gpu/ (each JSON with its device and provenance; the test log and nvidia-smi beside them).
# Arguments go to every benchmark (e.g. --threads 4). Needs the venv of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=results/benchmarks/gpu
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
start=$SECONDS
failed=()
step() {  # step <seconds> <what> <command...>: run with a time limit; a failure is reported and the rest still runs
  local limit=$1 what=$2
  shift 2
  echo "== $what (limit ${limit} s)"
  if ! timeout "$limit" "$@"; then
    failed+=("$what")
  fi
  echo "== $what: $((SECONDS - start)) s since start"
}
step 150 "CUDA tests" bash -c "$PY -m pytest -p no:cacheprovider tests/test_perf_cuda.py -q -rs 2>&1 | tee $OUT/tests.log; exit \${PIPESTATUS[0]}"
step 90 "operations, host syncs, step time" "$PY" benchmarks/bench_ops.py --device cuda "$@"
step 90 "cropping on vs off" "$PY" benchmarks/bench_cropping.py --device cuda "$@"
step 150 "compiled vs eager" "$PY" benchmarks/bench_compile.py --device cuda --quick "$@"
left=$((480 - (SECONDS - start)))   # the sweep gets what is left of the 8 minutes, at most 120 s
if [ "$left" -gt 120 ]; then left=120; fi
if [ "$left" -gt 10 ]; then
  step "$left" "path-choice sweep (every 6th point)" "$PY" benchmarks/bench_path_choice.py --device cuda --quick "$@"
else
  failed+=("path-choice sweep (no time left)")
fi
echo "gpu_check: done in $((SECONDS - start)) s; results in $OUT/"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'gpu_check: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
