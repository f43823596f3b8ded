"""Where and how a run's model runs: its device, compiled or not, in one process or several.

DDP: DistributedDataParallel under torchrun (process group setup, model wrapping, metric reduction). Launch:
``torchrun --nproc_per_node=N -m flexlib train params/experiments/x.yaml``. NCCL on GPUs, gloo on CPU.

Compile (`train.compile: true`): the model is compiled in place (`nn.Module.compile`, before the DDP wrap, as torch's
documentation advises for DDP), so that training and evaluation both run the compiled forward and checkpoints keep
their keys. `dynamic=False`: every input shape is compiled as it is (e.g. a smaller last evaluation batch once more),
never made symbolic. A FlexConv's crop reaches the compiled graph as one of a few box sizes that only grow
(flexlib.layers.crops), so a run compiles a bounded number of times: dynamo's cache of compiled graphs per function is
raised to that bound, for training and evaluation (`allow_recompiles`), where its default of 8 would send later crops
back to eager mode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .config import ConfigError
from ..layers.fused import model_recompile_bound


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """DDP-wrap ``model`` when running in several processes; optionally with SyncBatchNorm."""
    if not info.enabled:
        return model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError("train.sync_batchnorm=true needs GPUs: torch's SyncBatchNorm does not run on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """The torch device of a config's ``device`` value; refused when this machine does not have it."""
    if name == "auto":
        return torch.device(f"cuda:{(info or DistInfo()).local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: torch sees no CUDA GPU on this machine; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available on this machine; use 'auto' or 'cpu'")
    return device


# -- torch.compile -------------------------------------------------------------------------------------------------
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


def separate_kernel_cache() -> None:
    """One inductor cache of compiled kernels per instruction set ATen dispatches to (`ATEN_CPU_CAPABILITY`, which
    params/numerics.env pins): with torch 2.14.1, kernels cached by an unpinned process crashed a pinned one
    (segmentation fault in a compiled backward, measured here). A cache folder set by the user is left as it is."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        isa = torch.backends.cpu.get_cpu_capability().lower()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default_cache_dir()}-{isa}"


def compile_model(model: nn.Module, input_size) -> int:
    """Compile `model` in place for inputs of spatial size `input_size`; returns its crop-configuration bound."""
    separate_kernel_cache()
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
