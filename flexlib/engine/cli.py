"""Command line: ``python -m flexlib train|fit|evaluate params/experiments/<experiment>.yaml --profile quick|full``.

Every error is one line on stderr: exit 2 for what flexlib refuses on purpose (bad config, missing or garbage data,
unusable checkpoint, diverged run, usage), 1 for anything unexpected; ``--debug`` adds the traceback."""
from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
import warnings
from pathlib import Path


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (exit 2), like every other error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m flexlib", description="FlexConv experiments (ICLR 2022).")
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
    train.add_argument("--stop-after-epochs", type=_positive_int, metavar="N",
                       help="end this session after N epochs, leaving a run that --resume continues")

    fit = sub.add_parser("fit", help="fit kernel networks to Kodak images (Table 5)")
    fit.add_argument("params", type=Path, help="params/experiments/kodak.yaml")
    fit.add_argument("--profile", default="full", help="'full' (20000 iterations, 768x512) or 'quick'")
    fit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set iterations=500 --set 'rows=[magnet]'")
    fit.add_argument("--run-dir", type=Path, help="write results here instead of <out_dir>/<name>-<time>")

    ev = sub.add_parser("evaluate", help="evaluate an authors' checkpoint (rjbruin/flexconv) on a test set",
                        description="Evaluate a checkpoint of the official code on the experiment's test split, "
                                    "with the authors' preprocessing and resolution transfer (eq. 9).")
    ev.add_argument("params", type=Path, help="params/experiments/<experiment>.yaml: the data and the model name")
    ev.add_argument("--authors-checkpoint", required=True, metavar="PATH_OR_NAME",
                    help="a file, or a released name (e.g. cifar10-flexnet-7-seed2), downloaded once into the cache")
    ev.add_argument("--profile", default="full", help="'full' (the real dataset) or 'quick' (offline stand-in)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set data.download=true (repeatable)")
    ev.add_argument("--at", metavar="source|target|PX",
                    help="resolution to evaluate at (default: where the checkpoint was last trained)")
    ev.add_argument("--batch-size", type=int, default=100)
    ev.add_argument("--out", type=Path, help="write the results as JSON here")
    ev.add_argument("--cache-dir", type=Path, help="released checkpoints' folder (default <data root>/authors_checkpoints)")

    for p in (parser, *sub.choices.values()):   # --debug before or after the command; SUPPRESS keeps either
        p.add_argument("--debug", action="store_true", default=False if p is parser else argparse.SUPPRESS,
                       help="on an error, show the full traceback as well")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; every error is one line on stderr (exit 2 for a deliberate flexlib error, 1 for anything
    unexpected), with the traceback too under --debug."""
    args = _parser().parse_args(argv)
    with _one_line_warnings():
        try:
            return _dispatch(args)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except USER_ERRORS as err:
            return _report(err, args.debug, 2)
        except Exception as err:
            return _report(err, args.debug, 1, unexpected=True)


# Raised on purpose for bad input, missing or garbage data, unusable checkpoints and diverging runs.
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


def _report(err: BaseException, debug: bool, code: int, unexpected: bool = False) -> int:
    if debug:
        traceback.print_exc()
    message = " ".join(str(err).split()) or type(err).__name__
    if unexpected:
        message = f"unexpected {type(err).__name__}: {message} (rerun with --debug for the traceback)"
    print(f"error: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _one_line_warnings():
    """flexlib's own warnings (e.g. a checkpoint fallback) as one 'warning: ...' line, every time."""
    from .checkpoint import CheckpointWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CheckpointWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)
    with warnings.catch_warnings():
        warnings.simplefilter("always", CheckpointWarning)
        original, warnings.showwarning = warnings.showwarning, show
        yield


def _dispatch(args) -> int:
    if args.command == "evaluate":
        from .evaluate import evaluate_command
        return evaluate_command(args)
    if args.command == "fit":
        return _fit(args)
    return _train(args)


def _fit(args) -> int:
    from .config import FitConfig, load_config
    from .rundir import claim, remove_if_created
    from ..paper.kodak import run_fit
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


def _train(args) -> int:
    from .config import ConfigError, ExperimentConfig, load_config
    from .restore import load_run_config
    from .run import run_experiment
    if args.resume is not None:
        if args.run_dir is not None:
            raise ConfigError("give --resume RUN_DIR or --run-dir, not both: --resume continues the run where it is")
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
    if result.run_dir is not None:
        final = result.final
        if not result.finished:
            print(f"stopped after {args.stop_after_epochs} epoch(s); continue with --resume {result.run_dir}")
        print(f"{result.dataset}: test acc {final.get('test_acc', float('nan')):.4f} -> {result.run_dir}")
    return 0
