#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: unit tests and the notebooks through nbval.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE
export MPLBACKEND=Agg
.venv/bin/python -m pytest "$@"
