"""Models that leave the engine: an export file that plain PyTorch opens, and `load` for exports and run folders.

An export (`python -m flexlib export RUN_DIR`, or `save`) is a torch file that ``torch.load(path, weights_only=True)``
reads without flexlib into::

    {"format": "flexlib-model 1",
     "state_dict": {...},                                  # the weights: model.load_state_dict(obj["state_dict"])
     "create": {"name": "flexnet-16", "in_channels": 3, "num_classes": 10, ...},   # flexlib.models.create(**create)
     "source": {...}}                                      # where the weights come from (run, epoch, commit)

`load(path)` rebuilds the model from an export or from a run folder of the engine (its metadata.json names the
model, its checkpoint.pt holds the weights), checks every weight is finite, and returns it in eval mode. The state
dicts are self-contained: a FlexConv keeps its resolution factor and an N-Jet its σ scale as extra state, so a
model retargeted to another resolution loads as it was.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from .registry import create as create_model
from .weights import WeightsError, as_path, check_finite, read_file, read_tensors, read_verified

FORMAT = "flexlib-model 1"
RUN_CHECKPOINT = "checkpoint.pt"


def save(model: nn.Module, path: str | os.PathLike, create: dict, source: dict | None = None) -> Path:
    """Write `model`'s weights and the `create` arguments that rebuild it (name, in_channels, num_classes and
    overrides of flexlib.models.create) to a new file `path` (never over an existing one), atomically."""
    import torch
    path = as_path(path, "export")
    if path.exists():
        raise FileExistsError(f"{path} exists; flexlib never overwrites a file: choose another path")
    if not isinstance(create, dict) or not isinstance(create.get("name"), str):
        raise TypeError(f"export: create must be a dict of flexlib.models.create's arguments with a 'name', got "
                        f"{create!r:.80}")
    state = model.state_dict()
    check_finite(state, f"the weights of {create['name']}")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save({"format": FORMAT, "state_dict": state, "create": dict(create), "source": dict(source or {})},
                   tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_export(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(create arguments, state dict, source) of an export file, read as data (never code)."""
    obj = read_tensors(path, what="model export")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise WeightsError(f"{path} is not a flexlib model export (format {FORMAT!r} expected, found {found!r}); "
                           f"export a run with `python -m flexlib export RUN_DIR`")
    return obj["create"], obj["state_dict"], obj.get("source", {})


def run_model(run_dir: str | os.PathLike) -> tuple[dict, dict]:
    """(create arguments, metadata) of an engine run folder: its metadata.json names the model, its kwargs, and the
    channels and classes of its data."""
    meta_path = as_path(run_dir, "run folder") / "metadata.json"
    try:
        meta = json.loads(read_file(meta_path, "run metadata").decode())
        model = meta["config"]["model"]
        create = {"name": model["name"], "in_channels": meta["in_channels"], "num_classes": meta["num_classes"],
                  **model.get("kwargs", {})}
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{meta_path} does not name a model (a flexlib run's metadata.json names it: "
                           f"{type(err).__name__}: {err})") from None
    return create, meta


def read_run(run_dir: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(create arguments, state dict, source) of the latest checkpoint of an engine run folder."""
    run_dir = as_path(run_dir, "run folder")
    create, meta = run_model(run_dir)
    path = run_dir / RUN_CHECKPOINT
    state = read_verified(read_file(path, "run checkpoint"), str(path))
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise WeightsError(f"{path} is not a run checkpoint: it holds no model weights")
    source = {"run": meta.get("name"), "run_id": meta.get("run_id"), "dataset": meta.get("dataset"),
              "stage": state.get("stage"), "epoch": state.get("epoch"),
              "weights_of_epoch": state.get("weights_of_epoch", state.get("epoch")), "git_commit": meta.get("git_commit")}
    return create, state["model"], source


def from_state(create: dict, state_dict: dict, source: str) -> nn.Module:
    """flexlib.models.create(**create) holding `state_dict` (every key, every shape, every value finite), in eval
    mode; `source` names where the weights come from in errors."""
    check_finite(state_dict, source)
    arguments = dict(create)
    try:
        model = create_model(arguments.pop("name"), arguments.pop("in_channels"), arguments.pop("num_classes"),
                             **arguments)
    except (KeyError, TypeError, ValueError) as err:
        raise WeightsError(f"{source}: its model cannot be built from {create!r:.200}: {err}") from None
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, ValueError) as err:
        raise WeightsError(f"{source}: the weights do not fit {create['name']}: "
                           f"{' '.join(str(err).split())[:300]}") from None
    return model.eval()


def load(path: str | os.PathLike, map_location="cpu") -> nn.Module:
    """The model of an export file or of an engine run folder (its latest checkpoint), in eval mode."""
    path = as_path(path, "model")
    create, state, _ = read_run(path) if path.is_dir() else read_export(path)
    return from_state(create, state, str(path)).to(map_location)
