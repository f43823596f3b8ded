#!/usr/bin/env bash
# JupyterLab on the whole checkout (opening on notebooks/, results/ one click away), with the kernel of .venv/ and
# pinned numerics (set up first if needed). Every argument goes to `jupyter lab` (e.g. --no-browser --port 8899,
# or --ServerApp.root_dir=... to serve another folder); as root, --allow-root is added for you.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
unset PYTHONDONTWRITEBYTECODE MPLBACKEND
set -a; . params/numerics.env; set +a   # pinned numerics (instruction set, threads)
# No "get notified about official Jupyter news?" popup and no update checks: JupyterLab's settings overrides
settings=.venv/share/jupyter/lab/settings
mkdir -p "$settings"
cat > "$settings/overrides.json" <<'JSON'
{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
JSON
extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-root)
case " $* " in
  *" --ServerApp.root_dir"*|*" --notebook-dir"*|*" --ServerApp.notebook_dir"*) ;;   # the user's folder wins
  *) extra+=(--ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/notebooks --LabApp.default_url=/lab/tree/notebooks
             '--ContentsManager.hide_globs=["__pycache__","*.pyc","*.egg-info",".venv","build"]') ;;
esac
exec .venv/bin/jupyter lab "${extra[@]}" "$@"
