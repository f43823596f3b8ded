#!/usr/bin/env bash
# Open the paper notebooks in JupyterLab with the kernel of .venv/ (set up first if needed).
# Arguments go to `jupyter lab` (e.g. --no-browser --port 8899). As root, --allow-root is added for you.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE MPLBACKEND
set -a; . params/numerics.env; set +a   # pinned numerics (instruction set, threads)
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
exec .venv/bin/jupyter lab --ServerApp.root_dir=notebooks "${extra[@]}" "$@"
