#!/usr/bin/env bash
# Run the paper notebooks with papermill into results/<name>/<profile>/.
# Usage: scripts/run_notebooks.sh [NAME|all] [PROFILE]   (default: all notebooks, quick profile;
# profiles: quick, cpu, full, and authors for cifar and alias_free: see params/notebooks/)
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-all}
profile=${2:-quick}
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE MPLBACKEND   # figures go inline into the executed notebooks
set -a; . params/numerics.env; set +a   # pinned numerics (instruction set, threads)
export FLEXLIB_PROGRESS=text   # progress as text lines in executed notebooks, not widgets
if [ "$name" = all ]; then
  names=$(ls notebooks/*.ipynb | xargs -n1 basename | sed 's/\.ipynb$//')
else
  names=$name
fi
for nb in $names; do
  if [ ! -f "notebooks/$nb.ipynb" ]; then
    echo "no notebook notebooks/$nb.ipynb; available: $(ls notebooks/*.ipynb | xargs -n1 basename | tr '\n' ' ')" >&2
    exit 2
  fi
  params="params/notebooks/${nb}_${profile}.yaml"
  if [ ! -f "$params" ]; then
    [ "$name" = all ] && { echo "== $nb: no $profile profile, skipped"; continue; }
    echo "no parameters $params for notebook $nb and profile $profile;" \
         "available: $(ls params/notebooks/${nb}_*.yaml | xargs -n1 basename | tr '\n' ' ')" >&2
    exit 2
  fi
  out="results/$nb/$profile"
  mkdir -p "$out"
  echo "== $nb ($profile) -> $out"
  start=$(date +%s)
  .venv/bin/papermill -k python3 --cwd notebooks -f "$params" -p output_dir "../$out" \
    "notebooks/$nb.ipynb" "$out/$nb.ipynb"
  .venv/bin/python scripts/tidy_notebooks.py executed "$out/$nb.ipynb"
  echo "== $nb ($profile) done in $(( $(date +%s) - start )) s"
done
