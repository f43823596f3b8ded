"""The paper's commands of `python -m flexlib` (beside the engine's train and evaluate): `fit`, Table 5's Kodak
image fitting."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.cli import Command


def _fit_arguments(fit: argparse.ArgumentParser) -> None:
    fit.add_argument("params", type=Path, help="params/experiments/kodak.yaml")
    fit.add_argument("--profile", default="full", help="'full' (20000 iterations, 768x512) or 'quick'")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set iterations=500 --set 'rows=[magnet]'")
    fit.add_argument("--run-dir", type=Path, help="write results here instead of <out_dir>/<name>-<time>")


def _fit(args) -> int:
    from ..engine.checkpoint import claim, remove_if_created
    from ..engine.config import load_config
    from .kodak_fitting import FitConfig, run_fit
    cfg = load_config(args.params, args.profile, args.overrides, FitConfig)
    name = f"{args.params.stem}-{args.profile}"
    run_dir, created = claim(args.run_dir, cfg.out_dir, name)
    try:
        run_fit(cfg, name, run_dir)
    except BaseException:
        if not any(run_dir.iterdir()):
            remove_if_created(run_dir, created)
        raise
    return 0


PAPER_COMMANDS = (Command("fit", "fit kernel networks to Kodak images (Table 5)", _fit_arguments, _fit),)
