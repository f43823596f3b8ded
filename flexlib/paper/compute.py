"""Compute claims as ratios (§5 cropping, §4.3 low-resolution training, Table 3's time column): the time of one
training step (forward, cross-entropy, backward, Adam) of registry models on random CIFAR-shaped batches, or on
random sequences of Speech Commands' raw length (16 000 samples, one channel) for §5's 11.8×.

Timings use flexlib.paper.timing (the benchmarks' timer): the settings of one comparison are timed in turn within
each round, so load from other processes on a shared machine hits them alike, and we report the median over rounds. Random inputs are
enough: a step's cost does not depend on pixel values.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .timing import interleaved_samples
from ..models import count_parameters, create

# §5: "Cropping reduces the per-epoch run time by a factor of 11.8x and 5.5x for Speech Commands and CIFAR-10."
PAPER_CROPPING_SPEEDUP_CIFAR = 5.5
PAPER_CROPPING_SPEEDUP_SPEECH = 11.8
SPEECH_COMMANDS_RAW_LENGTH = 16000
# §4.3: FlexNet-7 on CIFAR-10, first 32 batches: 179 ms per batch at 16x16 vs 222 ms at 32x32 ("we save 24%").
PAPER_LOWRES_MS = {16: 179.0, 32: 222.0}
# Table 3, time (sec/epoch) on CIFAR-10; ratios are taken to FlexNet-16 (127 s).
PAPER_TABLE3_SECONDS = {"flexnet-16-conv3": 41, "flexnet-16-conv33": 242, "flexnet-16-njet": 409, "ckcnn-16": 68,
                        "ckcnn-16-magnet": 102, "flexnet-16-siren": 89, "flexnet-16-gabor": 161,
                        "flexnet-16-gabor-anis": 147, "flexnet-16-gabor-init": 150, "flexnet-16": 127}


@dataclass(frozen=True)
class Setting:
    """One timed configuration: a registry model (with overrides) on a batch of `batch` inputs of `channels` ×
    size^data_dim (images: 3 × size × size; Speech Commands raw: 1 × 16000 with data_dim 1)."""
    label: str
    model: str
    size: int = 32
    overrides: tuple[tuple[str, object], ...] = ()
    channels: int = 3
    data_dim: int = 2

    @property
    def input(self) -> str:
        return "x".join([str(self.size)] * self.data_dim)


def training_step(model: torch.nn.Module, batch: int, size: int, device: str, num_classes: int = 10,
                  channels: int = 3, data_dim: int = 2):
    """A closure running one training step on a fixed random batch."""
    x = torch.randn(batch, channels, *([size] * data_dim), device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def time_settings(settings: list[Setting], batch: int, device: str = "cpu", rounds: int = 3, warmup: int = 1,
                  seed: int = 0) -> list[dict]:
    """Median seconds per training step of each setting, the settings interleaved within each round."""
    steps, params = {}, {}
    for s in settings:
        torch.manual_seed(seed)
        model = create(s.model, s.channels, 10, **dict(s.overrides)).to(device)
        params[s.label] = count_parameters(model)
        steps[s.label] = training_step(model, batch, s.size, device, channels=s.channels, data_dim=s.data_dim)
    times = interleaved_samples(steps, repeats=rounds, warmup=warmup, device=device, budget_s=0)
    return [{"setting": s.label, "model": s.model, "input": s.input, "batch": batch,
             "overrides": dict(s.overrides), "params": params[s.label], "median_s": statistics.median(times[s.label]),
             "rounds_s": times[s.label]} for s in settings]
