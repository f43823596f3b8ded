"""Command line: ``python -m flexlib train|fit params/experiments/<experiment>.yaml --profile quick|full``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flexlib", description="FlexConv experiments (ICLR 2022).")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier (App. D.2 protocol); runs under torchrun for DDP",
                           description="Train a classifier as App. D.2 describes. Multi-GPU: "
                                       "torchrun --nproc_per_node=N -m flexlib train params/experiments/x.yaml")
    train.add_argument("params", nargs="?", type=Path,
                       help="params/experiments/<experiment>.yaml (optional with --resume: the run's own config is used)")
    train.add_argument("--profile", default="full",
                       help="'full' (the paper's values) or 'quick' (CPU minutes, offline stand-in data)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set train.epochs=3 --set optim.lr=0.001 (repeatable)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint")
    train.add_argument("--run-dir", type=Path, help="write the run here instead of <train.out_dir>/<name>-<time>")
    train.add_argument("--stop-after-epochs", type=int, metavar="N",
                       help="end this session after N epochs, leaving a run that --resume continues")

    fit = sub.add_parser("fit", help="fit kernel networks to Kodak images (Table 5)")
    fit.add_argument("params", type=Path, help="params/experiments/kodak.yaml")
    fit.add_argument("--profile", default="full", help="'full' (20000 iterations, 768x512) or 'quick'")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set iterations=500 --set 'rows=[magnet]'")
    fit.add_argument("--run-dir", type=Path, help="write results here instead of <out_dir>/<name>-<time>")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .config import ConfigError, ExperimentConfig, FitConfig, load_config
    try:
        if args.command == "fit":
            from ..paper.kodak import run_fit
            cfg = load_config(args.params, args.profile, args.overrides, FitConfig)
            run_fit(cfg, f"{args.params.stem}-{args.profile}", args.run_dir)
            return 0
        from .run import load_run_config, run_experiment
        if args.resume is not None:
            cfg = load_run_config(args.resume)
            if args.params is not None or args.overrides:
                print("note: --resume uses the run's saved config.yaml; params file and --set are ignored",
                      file=sys.stderr)
            result = run_experiment(cfg, run_dir=args.resume, resume=True, stop_after_epochs=args.stop_after_epochs)
        else:
            if args.params is None:
                raise ConfigError("give a params file (params/experiments/<experiment>.yaml) or --resume RUN_DIR")
            cfg = load_config(args.params, args.profile, args.overrides, ExperimentConfig)
            result = run_experiment(cfg, f"{args.params.stem}-{args.profile}", args.run_dir,
                                    stop_after_epochs=args.stop_after_epochs)
    except (ConfigError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.run_dir is not None:
        final = result.final
        print(f"{result.dataset}: test acc {final.get('test_acc', float('nan')):.4f} -> {result.run_dir}")
    return 0

