"""The engine's command line: ``python -m flexlib train|evaluate params/experiments/<experiment>.yaml --profile
quick|full`` (`python -m flexlib` adds the paper's commands: flexlib.__main__).

Every error is one line on stderr: exit 2 for what flexlib refuses on purpose (bad config, missing or garbage data,
unusable checkpoint, diverged run, usage), 1 for anything unexpected; ``--debug`` adds the traceback."""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _batch_size(text: str) -> int:
    from .config import MAX_BATCH_SIZE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"expected an integer 1..{MAX_BATCH_SIZE} "
                                         f"(flexlib.engine.config.MAX_BATCH_SIZE), got {text!r}")
    return int(text)


class _OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as one line (exit 2), like every other error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """A subcommand of `python -m flexlib`: its name, help, arguments and what it runs (returns the exit code)."""
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def _train_arguments(train: argparse.ArgumentParser) -> None:
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


def _evaluate_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("params", type=Path, nargs="?",
                    help="params/experiments/<experiment>.yaml: the data and the model (with --authors-checkpoint)")
    ev.add_argument("--run", type=Path, metavar="RUN_DIR", help="a run of the engine: its latest checkpoint on its "
                    "experiment's test split")
    ev.add_argument("--authors-checkpoint", metavar="PATH_OR_NAME",
                    help="a file, or a released name (e.g. cifar10-flexnet-7-seed2), downloaded once into the cache")
    ev.add_argument("--profile", default="full", help="'full' (the real dataset) or 'quick' (offline stand-in)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set data.download=true (repeatable)")
    ev.add_argument("--at", metavar="source|target|PX",
                    help="resolution to evaluate at (default: where the checkpoint was last trained)")
    ev.add_argument("--batch-size", type=_batch_size, default=100, help="test images per batch (default 100)")
    ev.add_argument("--out", type=Path, help="write the results as JSON here")
    ev.add_argument("--cache-dir", type=Path, help="released checkpoints' folder (default <data root>/authors_checkpoints)")


def _export_arguments(ex: argparse.ArgumentParser) -> None:
    ex.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder of `python -m flexlib train`")
    ex.add_argument("--out", type=Path, metavar="FILE", help="where to write the export (default RUN_DIR/export.pt)")


def _export(args) -> int:
    from .checkpoint import export_run
    path = export_run(args.run_dir, args.out)
    print(f"exported the model of {args.run_dir} -> {path}; open it with torch.load(path, weights_only=True) "
          f"(keys: state_dict, create, source) or flexlib.models.load(path)")
    return 0


def _evaluate(args) -> int:
    from .evaluate import evaluate_command
    return evaluate_command(args)


def _parser(commands) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m flexlib", description="FlexConv experiments (ICLR 2022).")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in commands:
        command.add_arguments(sub.add_parser(command.name, help=command.help, description=command.description))
    for p in (parser, *sub.choices.values()):   # --debug before or after the command; SUPPRESS keeps either
        p.add_argument("--debug", action="store_true", default=False if p is parser else argparse.SUPPRESS,
                       help="on an error, show the full traceback as well")
    return parser


def main(argv: list[str] | None = None, commands=None) -> int:
    """Run a command of `commands` (the engine's; `python -m flexlib` adds the paper's, see flexlib.__main__);
    every error is one line on stderr (exit 2 for a deliberate flexlib error, 1 for anything unexpected), with the
    traceback too under --debug."""
    commands = commands or ENGINE_COMMANDS
    args = _parser(commands).parse_args(argv)
    run = {command.name: command.run for command in commands}[args.command]
    with _one_line_warnings():
        try:
            return run(args)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
        except USER_ERRORS as err:
            return _report(err, args.debug, 2)
        except Exception as err:
            if out_of_memory(err):
                return _report(MemoryError(out_of_memory(err)), args.debug, 2)
            return _report(err, args.debug, 1, unexpected=True)


# Raised on purpose for bad input, missing or garbage data, unusable checkpoints and diverging runs.
USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


def out_of_memory(err: BaseException) -> str | None:
    """An allocation that failed (host or GPU memory), in one line with what to do; None for any other error."""
    text = " ".join(str(err).split())
    if not (isinstance(err, MemoryError) or "out of memory" in text.lower() or "can't allocate memory" in text):
        return None
    size = re.search(r"allocate (\d+) bytes", text)
    what = f"tried to allocate {int(size.group(1)) / 2**30:.1f} GiB" if size else text[:160]
    return f"out of memory: {what}; lower the batch size or the resolution"


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


def _train(args) -> int:
    from .checkpoint import load_run_config
    from .config import ConfigError, ExperimentConfig, load_config
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


ENGINE_COMMANDS = (
    Command("train", "train a classifier (App. D.2 protocol); runs under torchrun for DDP", _train_arguments,
            _train, "Train a classifier as App. D.2 describes. Multi-GPU: "
            "torchrun --nproc_per_node=N -m flexlib train params/experiments/x.yaml"),
    Command("evaluate", "evaluate a run or an authors' checkpoint (rjbruin/flexconv) on a test set",
            _evaluate_arguments, _evaluate, "Evaluate a run of the engine (--run) or a checkpoint of the official "
            "code (--authors-checkpoint, with the authors' preprocessing) on the experiment's test split, with "
            "resolution transfer (eq. 9) for --at."),
    Command("export", "write a run's model as a file plain PyTorch opens", _export_arguments, _export,
            "Export the model of a run (its latest checkpoint): torch.load(FILE, weights_only=True) gives "
            "{'state_dict', 'create', 'source'}; flexlib.models.load(FILE) rebuilds the model."),
)
