"""The engine runs behind a paper notebook: which runs (protocol rows and seeds, or stand-ins), running them, and
the accuracy each run reports, aggregated over seeds (mean ± std, as the paper prints).

In the `full` profile a notebook runs protocol rows (flexlib.paper.protocol) with their own seeds on the engine's
`full` profile; in `quick` and `cpu` it runs stand-ins on the engine's `quick` profile (offline data, small models),
each named after the row it stands for.

Which epoch's accuracy is reported follows the authors' trainer (rjbruin/flexconv `trainer.py`): on the image
datasets the test set doubles as validation set and the best test accuracy over the epochs is reported; on Speech
Commands and CharacterTrajectories the test accuracy at the epoch of best validation accuracy. Both are given beside
the accuracy after the last epoch.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import protocol

def experiments_dir() -> Path:
    """params/experiments of the flexlib checkout (flexlib.paper.reporting.checkout_root)."""
    from .reporting import checkout_root
    return checkout_root() / "params" / "experiments"


def __getattr__(name: str):
    if name == "PARAMS":          # `runs.PARAMS`: the experiments folder, found when first asked for
        return experiments_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Run:
    row: str                      # the protocol row it reproduces (full) or stands for (quick, cpu)
    label: str                    # the paper's label of that row
    experiment: str               # params/experiments/<experiment>.yaml
    seed: int
    settings: tuple[str, ...]     # `--set` overrides on the experiment's profile
    model: str                    # what actually runs (registry name and kwargs)
    variant: str = ""             # a stand-in the paper has no row for, e.g. "w/ conv. (k = 3)" beside T9's FlexNet

    @property
    def name(self) -> str:
        return f"{self.experiment}-{self.model.split()[0]}-seed{self.seed}"

    @property
    def key(self) -> str:
        """The row of our tables: the protocol row, followed by the variant if there is one."""
        return f"{self.row} {self.variant}" if self.variant else self.row


def check_runs(runs: list | None, seeds: list | None = None, family: str = "") -> None:
    """The `runs` and `seeds` parameters of a notebook checked, each problem named in one line: an entry that is not
    a [protocol row, model, create() kwargs(, variant)] list, an unknown row, an unknown model (with the known ones, as the
    command line lists them; `family`: the prefix the notebook's models must have), kwargs `create` refuses, a seed
    out of range."""
    from ..engine.config import model_kwargs_problem, one_of, seed_range
    from ..models import available
    if seeds is not None:
        if not isinstance(seeds, (list, tuple)) or not seeds:
            raise ValueError(f"seeds must be a non-empty list of integers or None, got {seeds!r}")
        for seed in seeds:
            if seed_range(seed):
                raise ValueError(f"seeds: {seed!r} is not allowed; expected {seed_range(seed)}")
    if runs is None:
        return
    if not isinstance(runs, (list, tuple)):
        raise ValueError(f"runs must be a list of [protocol row, model, create() kwargs(, variant)] lists or None, "
                         f"got {runs!r}")
    models = lambda: [m for m in available() if m.startswith(family)]
    for i, entry in enumerate(runs):
        if not isinstance(entry, (list, tuple)) or len(entry) not in (3, 4):
            raise ValueError(f"runs[{i}] must be a [protocol row, model, create() kwargs(, variant)] list, "
                             f"got {entry!r}")
        key, model, kwargs, *variant = entry
        if variant and not (isinstance(variant[0], str) and variant[0]):
            raise ValueError(f"runs[{i}]: the variant (fourth element) must be a non-empty string, got {variant[0]!r}")
        try:
            protocol.row(key)
        except KeyError as err:
            raise ValueError(f"runs[{i}]: {err.args[0]}") from None
        problem = one_of(models, f"{family}* models" if family else "models")(model)
        if problem:
            raise ValueError(f"runs[{i}]: model {model!r} is not allowed; expected {problem}")
        if not isinstance(kwargs, dict):
            raise ValueError(f"runs[{i}]: create() kwargs must be a mapping, got {kwargs!r}")
        problem = model_kwargs_problem(model, kwargs)
        if problem:
            raise ValueError(f"runs[{i}]: {model} kwargs: {problem}")


def plan(tables: list[str], runs: list | None = None, seeds: list[int] | None = None,
         keys: list[str] | None = None) -> list[Run]:
    """The runs of a notebook. `runs=None`: the protocol rows `keys` (default: every row of `tables`), each with
    its seeds (or `seeds`), as the authors ran it. Else `runs` lists [protocol row key, model, create() kwargs]
    stand-ins, each run with `seeds` (default [0]) and the row's method settings (alias regularizer, resolution
    change); a fourth element names a variant the paper has no row for (its tables show it as "<row> <variant>",
    without a paper number), e.g. ["T9 FlexNet-16", "flexnet-3", {"type": "conv", "kernel_size": 3},
    "w/ conv. (k = 3)"]. Both are checked first (`check_runs`)."""
    check_runs(runs, seeds)
    if runs is None:
        out = []
        chosen = [protocol.row(k) for k in keys] if keys else [r for t in tables for r in protocol.rows(t)]
        for r in chosen:
            for seed in seeds if seeds is not None else r.seeds:
                model = r.model + (f" {json.dumps(r.model_kwargs)}" if r.model_kwargs else "")
                out.append(Run(r.key, r.label, r.experiment, seed, tuple(protocol.overrides(r, seed)), model))
        return out
    out = []
    for entry in runs:
        key, model, kwargs, *variant = entry
        r = protocol.row(key)
        for seed in seeds if seeds is not None else [0]:
            settings = (f"model.name={model}", f"model.kwargs={json.dumps(kwargs)}", f"train.seed={seed}",
                        *protocol.method_overrides(r))
            out.append(Run(r.key, r.label, r.experiment, seed, settings,
                           model + (f" {json.dumps(kwargs)}" if kwargs else ""), *variant))
    return out


def execute(runs: list[Run], profile: str, runs_dir: Path, device: str, overrides: dict | list[str] | None = None,
            source_models: dict | None = None) -> list:
    """Run every planned run with the engine; returns the RunResults in order. `profile` is the notebook's: `full`
    uses the experiments' full profiles, every other the quick ones (stand-in data), with `overrides` last.

    With `source_models` (a dict), a run with a resolution change stops after its source stage, its model there is
    read back from the checkpoint into `source_models[run]` (for frequencies and spectra, Table 4), and it goes on."""
    from ..engine import load_config, load_model, run_experiment
    from ..engine.config import override_items
    overrides = override_items(overrides)
    engine_profile = "full" if profile == "full" else "quick"
    results = []
    for run in runs:
        cfg = load_config(experiments_dir() / f"{run.experiment}.yaml", engine_profile,
                          [*run.settings, f"train.device={device}", f"train.out_dir={runs_dir}", *overrides])
        name = f"{run.name}-{profile}"
        if source_models is not None and cfg.resolution is not None:
            at_source = run_experiment(cfg, name, stop_after_epochs=cfg.train.epochs)
            source_models[run] = load_model(at_source.run_dir)
            result = run_experiment(cfg, run_dir=at_source.run_dir, resume=True)
        else:
            result = run_experiment(cfg, name)
        results.append(result)
    return results


def stage_accuracy(history: list[dict], stage: str) -> float:
    """Test accuracy (%) at the end of a stage: "train" (at the source resolution), "target-before-finetune" (right
    after the resolution change) or "finetune"."""
    rows = [h for h in history if h.get("stage") == stage]
    return 100 * rows[-1]["test_acc"] if rows else math.nan


def resolution_table(runs: list[Run], results: list) -> pd.DataFrame:
    """One line per run with a resolution change (Table 4, Fig. 5): accuracy at the source after training, at the
    target right after the change (eq. 9) and after fine-tuning, and the changes Δ (points)."""
    lines = []
    for run, result in zip(runs, results):
        source, upsampled = stage_accuracy(result.history, "train"), stage_accuracy(result.history, "target-before-finetune")
        finetuned = stage_accuracy(result.history, "finetune")
        cfg = result.metadata["config"]["resolution"]
        lines.append({"row": run.row, "label": run.label, "seed": run.seed, "source": cfg["source"],
                      "target": cfg["target"], "acc_source": source, "acc_target_upsampled": upsampled,
                      "acc_target_finetuned": finetuned, "delta_upsampling": upsampled - source,
                      "delta_finetuning": finetuned - source, "our_model": run.model, "our_data": result.dataset,
                      "params": result.metadata["parameters"]})
    return pd.DataFrame(lines, columns=RESOLUTION_COLUMNS)


RESOLUTION_COLUMNS = ["row", "label", "seed", "source", "target", "acc_source", "acc_target_upsampled",
                      "acc_target_finetuned", "delta_upsampling", "delta_finetuning", "our_model", "our_data", "params"]


def selection(experiment: str) -> str:
    """How the authors pick the reported epoch for an experiment: 'test_at_best_val' or 'best_test'."""
    return "test_at_best_val" if experiment in ("char_trajectories", "speech_commands_mfcc",
                                               "speech_commands_raw") else "best_test"


def reported(history: list[dict], rule: str, stage: str = "train", key: str = "acc") -> float:
    """The accuracy (fraction) the authors' trainer would report for one stage of a run."""
    epochs = [h for h in history if h.get("stage", "train") == stage and f"test_{key}" in h]
    if not epochs:
        return math.nan
    if rule == "test_at_best_val" and all(f"val_{key}" in h for h in epochs):
        return max(epochs, key=lambda h: h[f"val_{key}"])[f"test_{key}"]
    return max(h[f"test_{key}"] for h in epochs)


def per_run_table(runs: list[Run], results: list) -> pd.DataFrame:
    """One line per run: reported and final test accuracy (%), the model that ran, its data, parameters, epochs."""
    lines = []
    for run, result in zip(runs, results):
        history = result.history
        train = [h for h in history if h.get("stage", "train") == "train"]
        line = {"row": run.key, "label": run.label, "experiment": run.experiment, "seed": run.seed,
                "reported_acc": 100 * reported(history, selection(run.experiment)),
                "final_acc": 100 * train[-1]["test_acc"] if train else math.nan,
                "selection": selection(run.experiment), "our_model": run.model, "our_data": result.dataset,
                "params": result.metadata["parameters"], "epochs": len(train), "protocol_row": run.row}
        if any("test_top5" in h for h in train):
            line["reported_top5"] = 100 * reported(history, selection(run.experiment), key="top5")
        lines.append(line)
    return pd.DataFrame(lines, columns=None if lines else RUN_COLUMNS)


RUN_COLUMNS = ["row", "label", "experiment", "seed", "reported_acc", "final_acc", "selection", "our_model", "our_data",
               "params", "epochs", "protocol_row"]


def mean_std(values) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary_table(per_run: pd.DataFrame, column: str = "reported_acc") -> pd.DataFrame:
    """Per row of ours: the paper's accuracy (flexlib.paper.results.paper_accuracy; none for a variant the paper has
    no row for) beside our mean ± std over seeds (`n` runs) and the difference."""
    from .results import paper_accuracy
    lines = []
    if per_run.empty:
        return pd.DataFrame(columns=["row", "paper", "ours_mean", "ours_std", "n", "difference", "final_mean",
                                     "our_model", "our_data"])
    for row, part in per_run.groupby("row", sort=False):
        mean, std = mean_std(part[column])
        key = part["protocol_row"].iloc[0] if "protocol_row" in part else row
        value = paper_accuracy(protocol.row(key)) if key == row else None
        lines.append({"row": row, "paper": value, "ours_mean": mean, "ours_std": std, "n": len(part),
                      "difference": mean - value if value is not None else math.nan,
                      "final_mean": mean_std(part["final_acc"])[0], "our_model": part["our_model"].iloc[0],
                      "our_data": part["our_data"].iloc[0]})
    return pd.DataFrame(lines)


def is_smoke_test(result) -> bool:
    """A run cut to a few steps per epoch (`train.max_steps_per_epoch`), e.g. a test of a full profile's path: its
    accuracy says nothing, so the notebooks check it for finiteness only."""
    return result.metadata["config"]["train"]["max_steps_per_epoch"] is not None
