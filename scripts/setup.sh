#!/usr/bin/env bash
# Create .venv/ in the clone and install flexlib with its extras (idempotent: skipped when nothing changed).
# Every package comes from requirements.lock (exact versions, SHA-256 checked) when this Python is the one the lock
# was made for (scripts/lock.py); another Python gets pyproject.toml's ranges, and a note that its numbers may differ.
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE  # let Python cache bytecode: `import torch` is twice as fast
PYTHON=${PYTHON:-python3}
stamp=.venv/.flexlib-stamp
want=$(cat pyproject.toml constraints.txt requirements.lock | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
locked=$(sed -n 's/^# python: //p' requirements.lock)
have=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ "$have" = "$locked" ]; then
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps -e .
else
  echo "note: requirements.lock is for Python $locked, this is Python $have: installing the ranges of" \
       "pyproject.toml instead (the numbers may then differ from results/)" >&2
  .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[dev,notebooks]'
fi
echo "$want" > "$stamp"
