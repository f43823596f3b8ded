"""The protocol table (flexlib.paper.protocol) is the one source of truth of every `full` profile: each experiment
file's full profile is its default row, `overrides(row)` builds every other row exactly, every row builds its
model, and every paper number the notebooks compare with has a row."""
from pathlib import Path

import pytest
import yaml

from flexlib.engine.config import load_config
from flexlib.models import model_config
from flexlib.paper import protocol, results

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "params" / "experiments"


def _as_row_values(cfg) -> dict:
    """What a loaded config says about the fields a protocol row fixes."""
    values = {"model": cfg.model.name, "model_kwargs": cfg.model.kwargs, "lr": cfg.optim.lr,
              "weight_decay": cfg.optim.weight_decay, "weight_decay_form": cfg.optim.weight_decay_form,
              "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size, "augment": cfg.data.augment,
              "alias_lambda": cfg.train.alias_lambda, "alias_include_mask": cfg.train.alias_include_mask,
              "resolution": None if cfg.resolution is None else
              (cfg.resolution.source, cfg.resolution.target, cfg.resolution.finetune_epochs),
              "warmup_epochs": cfg.optim.warmup_epochs, "mask_lr_factor": cfg.optim.mask_lr_factor,
              "schedule": cfg.optim.schedule, "restore_best": cfg.train.restore_best}
    return values


def _expected(row: protocol.Row) -> dict:
    return {"model": row.model, "model_kwargs": row.model_kwargs, "lr": row.lr, "weight_decay": row.weight_decay,
            "weight_decay_form": row.weight_decay_form, "epochs": row.epochs, "batch_size": row.batch_size,
            "augment": row.augment, "alias_lambda": row.alias_lambda, "alias_include_mask": row.alias_include_mask,
            "resolution": row.resolution, "warmup_epochs": 5, "mask_lr_factor": 0.1, "schedule": "cosine",
            "restore_best": row.resolution is not None}


def test_every_experiment_file_has_a_default_row_and_back():
    files = {p.stem for p in EXPERIMENTS.glob("*.yaml")} - {"kodak"}
    assert files == set(protocol.DEFAULT_ROWS), files ^ set(protocol.DEFAULT_ROWS)


@pytest.mark.parametrize("experiment", sorted(protocol.DEFAULT_ROWS))
def test_full_profile_is_its_default_row(experiment):
    row = protocol.row(protocol.DEFAULT_ROWS[experiment])
    assert row.experiment == experiment
    cfg = load_config(EXPERIMENTS / f"{experiment}.yaml", "full")
    assert _as_row_values(cfg) == _expected(row)
    assert not cfg.data.offline and cfg.train.max_steps_per_epoch is None


@pytest.mark.parametrize("key", sorted(protocol.ROWS))
def test_overrides_build_the_row_exactly(key):
    row = protocol.row(key)
    cfg = load_config(EXPERIMENTS / f"{row.experiment}.yaml", "full", protocol.overrides(row, seed=row.seeds[-1]))
    assert _as_row_values(cfg) == _expected(row)
    assert cfg.train.seed == row.seeds[-1] and not cfg.data.offline
    model_config(row.model, 3, 10, **row.model_kwargs)          # the model kwargs are valid create() overrides


def test_rows_cover_every_paper_number_the_notebooks_compare_with():
    labels = {(r.table, r.label) for r in protocol.ROWS.values()}
    for label in results.CIFAR10:
        assert ("3", label) in labels or ("6", label) in labels or label in ("FlexNet-7", "CKCNN-7", "CKCNN_MAGNet-7"), label
    for label in results.TABLE4:
        assert ("4", label) in labels, label
    for label in results.TABLE8:
        assert ("8", label) in labels, label
    for label in results.IMAGENET32:
        assert ("7", label) in labels, label
    sequence = {(r.experiment, r.model) for r in protocol.ROWS.values() if r.table in ("1", "2")}
    for model, row in {**results.TABLE1, **results.TABLE2}.items():
        for experiment in row:
            assert (experiment, model) in sequence, (experiment, model)
    assert len(protocol.rows("F5")) == 20 and all(r.seeds == (0, 1, 2, 3, 4) for r in protocol.rows("F5"))


def test_seeds_follow_the_paper():
    """Three runs where the paper prints ± (Tables 3, 4, 6, 7, 8, 9, 10), one for Tables 1 and 2 and the rows
    Table 6 marks as single runs, five for Fig. 5 (experiments/readme.md: seeds 0, 1, 2, ...)."""
    for r in protocol.ROWS.values():
        if r.table in ("1", "2") or "single run" in r.notes:
            assert r.seeds == (0,), r.key
        elif r.table == "F5":
            assert r.seeds == tuple(range(5))
        else:
            assert r.seeds == (0, 1, 2), r.key


def test_the_numbers_come_from_the_commands_where_there_are_commands():
    """Spot checks against experiments/readme.md (read by hand): values the paper's text states differently."""
    assert protocol.row("T3 FlexNet-16").mask_init == "official"                 # mask.init_value=0.075, not σ² 0.125
    assert protocol.row("T3 CKCNN-16").lr == protocol.row("T3 FlexNet_SIREN-16").lr == 0.001
    stl = protocol.row("T10 FlexNet-16")
    assert (stl.augment, stl.batch_size, stl.epochs) == (False, 256, 100)
    assert protocol.row("T7 CIFARResNet-32").lr == 0.001
    assert protocol.row("T3 FlexNet-16 w/ N-Jet").weight_decay == 1e-5
    assert protocol.row("T4 CKCNN-16_SIREN").lr == 0.01                          # the cross-res command: 0.01


@pytest.mark.parametrize("notebook, tables", [("cifar", {"3", "6"}), ("sequential", {"1", "2"}),
                                              ("alias_free", {"4", "F5"}), ("kernel_sizes", None)])
def test_notebook_full_profiles_run_the_protocol(notebook, tables):
    full = yaml.safe_load((ROOT / "params" / "notebooks" / f"{notebook}_full.yaml").read_text())
    if tables is None:     # kernel_sizes: Fig. 6's three FlexNets, as Table 6's rows
        assert full["rows"] == ["T6 FlexNet-3", "T6 FlexNet-5", "T3 FlexNet-16"] and full["runs"] is None
        assert all(protocol.row(key).model_kwargs == {"mask_init": "official"} for key in full["rows"])
        return
    assert full["runs"] is None and full["seeds"] is None and full["overrides"] == {"data.download": True}, \
        f"{notebook}: the full profile must run every protocol row of its tables with the rows' own seeds"
    assert set(full["tables"]) == tables


def test_docs_protocol_is_the_table():
    assert (ROOT / "docs" / "protocol.md").read_text() == protocol.document(), \
        "regenerate it: python -m flexlib.paper.protocol > docs/protocol.md"
