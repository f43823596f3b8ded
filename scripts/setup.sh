#!/usr/bin/env bash
# Create .venv/ in the clone and install flexlib with its extras (idempotent: skipped when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE  # let Python cache bytecode: `import torch` is twice as fast
PYTHON=${PYTHON:-python3}
stamp=.venv/.flexlib-stamp
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
echo "$want" > "$stamp"
