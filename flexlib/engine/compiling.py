"""`train.compile: true`: the run's model compiled with torch.compile, and what compiling cost.

The model is compiled in place (`nn.Module.compile`, before the DDP wrap, as torch's documentation advises for
DDP), so that training and evaluation both run the compiled forward and checkpoints keep their keys. `dynamic=False`:
every input shape is compiled as it is (e.g. a smaller last evaluation batch once more), never made symbolic. A
FlexConv's crop reaches the compiled graph as one of a few box sizes that only grow (flexlib.layers.crops), so a run
compiles a bounded number of times: dynamo's cache of compiled graphs per function is raised to that bound, for
training and evaluation (`allow_recompiles`), where its default of 8 would send later crops back to eager mode.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.fused import model_recompile_bound

BACKEND = "inductor"   # torch.compile's default


def allow_recompiles(model: nn.Module, input_size) -> int:
    """Raise dynamo's recompile limits to what `model` can need at `input_size` (training and evaluation graphs
    of every crop configuration it can still meet, flexlib.layers.fused.model_recompile_bound); returns that
    number of configurations."""
    bound = model_recompile_bound(model, input_size)
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, 2 * bound + 2)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 8 * bound)
    return bound


def compile_model(model: nn.Module, input_size) -> int:
    """Compile `model` in place for inputs of spatial size `input_size`; returns its crop-configuration bound."""
    bound = allow_recompiles(model, input_size)
    model.compile(backend=BACKEND, dynamic=False)
    return bound


def compile_stats(since: dict | None = None) -> dict:
    """What compiling has cost this process (torch._dynamo's own accounting), or since the stats `since`: seconds
    spent compiling (frames and backward graphs) and graphs compiled."""
    from torch._dynamo.utils import calculate_time_spent, counters
    since = since or {}
    seconds = calculate_time_spent().get("total_wall_time", 0.0) - since.get("compile_seconds", 0.0)
    graphs = int(counters["stats"]["unique_graphs"]) - since.get("compiled_graphs", 0)
    return {"compile_seconds": round(seconds, 2), "compiled_graphs": graphs}
