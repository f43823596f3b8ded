#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: the unit tests, then every notebook in its quick profile
# through nbval. Arguments replace the default selection and go to pytest (e.g. tests/test_alias.py -k eq21).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE MPLBACKEND
set -a; . params/numerics.env; set +a   # pinned numerics (instruction set, threads)
export FLEXLIB_PROGRESS=text   # progress as text lines in executed notebooks, not widgets
# nbval stops the notebooks' kernels without letting them clean up: their temporary folders go into a scratch
# folder removed when the tests end
scratch=$(mktemp -d "${TMPDIR:-/tmp}/flexlib-tests-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch" FLEXLIB_INTERACTIVE_DIR="$scratch/interactive"   # notebooks run without output_dir
if [ $# -eq 0 ]; then
  set -- tests notebooks --nbval-lax --nbval-current-env
fi
.venv/bin/python -m pytest -p no:cacheprovider "$@"
