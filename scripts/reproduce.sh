#!/usr/bin/env bash
# Set up (if needed) and run the main job: every paper notebook in its quick profile (CPU, offline, minutes),
# through papermill into results/<notebook>/quick/, with pinned numerics (params/numerics.env); then compare every
# table with the committed one and say what reproduced exactly.
# Usage: scripts/reproduce.sh [NAME|all] [PROFILE] [--check]   (--check: exit 1 if a number differs)
set -euo pipefail
cd "$(dirname "$0")/.."
check=()
args=()
for arg in "$@"; do
  if [ "$arg" = --check ]; then check=(--check); else args+=("$arg"); fi
done
bash scripts/run_notebooks.sh "${args[@]}"
.venv/bin/python scripts/compare_results.py "${check[@]}" --profile "${args[1]:-quick}" "${args[0]:-all}"
