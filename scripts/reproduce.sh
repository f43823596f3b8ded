#!/usr/bin/env bash
# Set up (if needed) and run the main job: a short demo that trains a FlexConv and prints its learned kernel size.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE
export MPLBACKEND=Agg
.venv/bin/python examples/demo.py "$@"
