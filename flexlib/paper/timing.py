"""Timing and memory of a piece of work, for the benchmarks (benchmarks/) and the compute notebook.

Timings are medians over repeats after warm-up. A candidate and its baseline are timed alternately inside the
same loop, so that load from other processes on a shared machine hits both alike and their ratio stays stable.
"""
from __future__ import annotations

import gc
import statistics
import time

import torch


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved_samples(fns: dict, repeats: int = 5, warmup: int = 1, device="cpu", budget_s: float = 3.0,
                        max_repeats: int = 25) -> dict[str, list[float]]:
    """Seconds of every timed call of each function in `fns`, the functions called in turn within each repeat.
    Cheap functions get more repeats (up to `max_repeats`, within about `budget_s` seconds), so that their
    medians are stable too; budget_s=0 gives exactly `repeats`."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    rounds = 0
    spent = 0.0
    while rounds < repeats or (rounds < max_repeats and spent * (rounds + 1) / rounds < budget_s):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            spent += elapsed
        rounds += 1
    return times


def time_interleaved(fns: dict, repeats: int = 5, warmup: int = 1, device="cpu", budget_s: float = 3.0,
                     max_repeats: int = 25) -> dict[str, float]:
    """Median seconds per call of each function in `fns` (see `interleaved_samples`)."""
    samples = interleaved_samples(fns, repeats, warmup, device, budget_s, max_repeats)
    return {name: statistics.median(t) for name, t in samples.items()}


def peak_memory(fn, device="cpu") -> dict[str, float]:
    """Peak memory of one call of `fn` (e.g. a training step), in MiB, above what was allocated before it.

    CUDA: torch.cuda.max_memory_allocated. CPU: torch.profiler(profile_memory=True) attributes every allocation
    and free of torch's CPU allocator to an op; the peak is that of their running sum, with allocations placed
    at the op's start and frees at its end (so it is slightly pessimistic). `saved_mib` is the part held by the
    autograd graph: the distinct storages saved for backward (torch.autograd.graph.saved_tensors_hooks)."""
    gc.collect()
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        torch.cuda.synchronize()
        return {"peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20,
                "saved_mib": sum(saved.values()) / 2**20, "method": "cuda.max_memory_allocated"}
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
    changes = []
    for e in prof.events():
        b = e.self_cpu_memory_usage
        if b:
            changes.append((e.time_range.start if b > 0 else e.time_range.end, b))
    live = peak = 0
    for _, b in sorted(changes):
        live += b
        peak = max(peak, live)
    return {"peak_mib": peak / 2**20, "saved_mib": sum(saved.values()) / 2**20,
            "method": "torch.profiler CPU allocator events (running sum)"}
