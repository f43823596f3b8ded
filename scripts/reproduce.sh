#!/usr/bin/env bash
# Set up (if needed) and run the main job: every paper notebook in its quick profile (CPU, offline, minutes),
# through papermill into results/<notebook>/quick/. Arguments go to run_notebooks.sh: [NAME|all] [quick|full].
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/run_notebooks.sh "$@"
