"""Which convolution a FlexConv runs, spatial or FFT (its `conv_mode`): one function per policy, the cost model the
automatic policy predicts with, and the timer that measures where the model cannot decide.

Policies: "spatial", "fft"; "benchmark" times both paths once per shape signature and keeps the faster (as
cudnn.benchmark); "auto" predicts with the cost model (free, the same on every run) for 1-D and 2-D on CPU, where
the model was fitted and validated, and times only its near ties (predictions within `NEAR_TIE`×, where it errs by
up to 1.9×); in 3-D (few shapes in its fit: it misjudges 3-D FFTs at 16-32 channels by up to 2.5×) and on other
devices (no model fitted there) "auto" times. Timing depends on the machine's load, so two runs (or a run and its
resume) could choose differently and round differently: with deterministic algorithms on
(`torch.use_deterministic_algorithms(True)`, which the engine and the notebooks turn on) and under torch.compile,
which cannot time, every timed choice becomes the cost model's, the same on every run.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass

import torch

from .conv import conv_nd, fft_conv_nd, fft_lengths

CONV_MODES = ("auto", "spatial", "fft", "benchmark")
NEAR_TIE = 1.5    # "auto" times a shape when the model's two predictions lie within this factor
HOPELESS = 20.0   # a path whose warm-up run takes this many times the other's is not timed again


# -- the cost model ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpatialTerms:
    """What a spatial convolution's training step (forward + backward) costs in proportion to."""
    macs_1d: float          # direct multiply-adds B·C_in·C_out·Πn·Πk, one term per D (oneDNN's efficiency differs)
    macs_2d: float
    macs_3d: float
    tap_traffic: float      # B·(C_in + C_out)·Πn·Πk: small channel counts run below peak
    causal_taps_1d: float   # B·C_out·Πn·Πk in 1-D, whose long-kernel backward runs further below
    constant: float = 1.0


@dataclass(frozen=True)
class FFTTerms:
    """What an FFT convolution's training step costs in proportion to, over M = ΠL points (`fft_lengths`)."""
    signal_transforms: float   # B·(C_in + C_out)·M·log₂M
    kernel_transforms: float   # C_in·C_out·M·log₂M
    contraction: float         # B·C_in·C_out·M: the channels contracted per frequency
    kernel_copies: float       # C_in·C_out·M
    signal_copies: float       # B·(C_in + C_out)·M
    constant: float = 1.0


def _dot(terms, coefficients) -> float:
    return sum(getattr(terms, f.name) * getattr(coefficients, f.name) for f in dataclasses.fields(terms))


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of each term, for each path."""
    spatial: SpatialTerms
    fft: FFTTerms

    def costs(self, batch: int, in_channels: int, out_channels: int, input_size, kernel_size,
              causal: bool = False) -> tuple[float, float]:
        """Predicted seconds of a training step: (spatial, FFT)."""
        spatial, fft = path_terms(batch, in_channels, out_channels, input_size, kernel_size, causal)
        return _dot(spatial, self.spatial), _dot(fft, self.fft)


def path_terms(batch: int, in_channels: int, out_channels: int, input_size, kernel_size,
               causal: bool = False) -> tuple[SpatialTerms, FFTTerms]:
    """The terms of each path's cost for one convolution's shape."""
    dims = len(kernel_size)
    n, k = math.prod(input_size), math.prod(kernel_size)
    m = math.prod(fft_lengths(input_size, kernel_size, causal))
    log_m = max(math.log2(m), 1.0)
    macs = batch * in_channels * out_channels * n * k
    signals, kernels = batch * (in_channels + out_channels), in_channels * out_channels
    spatial = SpatialTerms(macs * (dims == 1), macs * (dims == 2), macs * (dims == 3), signals * n * k,
                           batch * out_channels * n * k * (dims == 1))
    fft = FFTTerms(signals * m * log_m, kernels * m * log_m, batch * kernels * m, kernels * m, signals * m)
    return spatial, fft


# Fitted to the measured FFT/spatial time ratios of a sweep of shapes (benchmarks/bench_path_choice.py --fit: robust
# least squares on log ratios, which the load of a shared machine does not bias; CPU, 1 thread, torch 2.14.1,
# oneDNN and pocketfft; results/benchmarks/path_choice_fit.json), the contraction held to at least the cost of the
# 2-D direct multiply-adds it replaces. Ratios fix the coefficients up to one common scale, set so that the
# predicted spatial 2-D times match the measured ones.
CPU_TRAINING_STEP = CostModel(
    spatial=SpatialTerms(macs_1d=1.589e-11, macs_2d=3.283e-11, macs_3d=3.695e-12, tap_traffic=5.989e-10,
                         causal_taps_1d=1.84e-09, constant=4.295e-4),
    fft=FFTTerms(signal_transforms=4.544e-10, kernel_transforms=1.174e-09, contraction=6.566e-11,
                 kernel_copies=4.103e-16, signal_copies=1.074e-08, constant=8.69e-4))


def path_costs(batch: int, in_channels: int, out_channels: int, input_size, kernel_size,
               causal: bool = False) -> tuple[float, float]:
    """Predicted seconds of a training step of (spatial, FFT) on CPU (`CPU_TRAINING_STEP`)."""
    return CPU_TRAINING_STEP.costs(batch, in_channels, out_channels, input_size, kernel_size, causal)


def prefer_fft(batch: int, in_channels: int, out_channels: int, input_size, kernel_size, causal: bool = False) -> bool:
    """The cost model's choice: FFT when its predicted time (`path_costs`) is the smaller."""
    spatial, fft = path_costs(batch, in_channels, out_channels, input_size, kernel_size, causal)
    return fft < spatial


# -- the timer ----------------------------------------------------------------------------------------------------
class PathTimer:
    """The measured choice, as cudnn.benchmark makes it: the first call with a new signature (device, dtype, shapes,
    causal, whether autograd will run, autocast) times both paths on detached copies (forward, and backward when
    autograd will run; median of `repeats` after a warm-up) and keeps the faster for that signature. A path whose
    warm-up run took `HOPELESS` times the other's is not run again (a 3-D spatial convolution with a kernel as
    large as its input can take minutes on a CPU)."""

    def __init__(self, repeats: int = 3):
        self.repeats = repeats
        self.choices: dict[tuple, bool] = {}

    def clear(self) -> None:
        self.choices.clear()

    def prefers_fft(self, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> bool:
        grad = torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad)
        key = (x.device, x.dtype, tuple(x.shape), tuple(kernel.shape), bias is not None, causal, grad,
               torch.is_autocast_enabled(x.device.type))
        if key not in self.choices:
            self.choices[key] = self._measure(x, kernel, bias, causal, grad)
        return self.choices[key]

    def _measure(self, x, kernel, bias, causal: bool, grad: bool) -> bool:
        xs = x.detach().requires_grad_(grad and x.requires_grad)
        ks = kernel.detach().requires_grad_(grad)
        bs = None if bias is None else bias.detach()

        def run(conv) -> float:
            _sync(x.device)
            start = time.perf_counter()
            with torch.set_grad_enabled(grad):
                y = conv(xs, ks, bs, causal)
                if grad:
                    y.sum().backward()
            _sync(x.device)
            ks.grad = xs.grad = None
            return time.perf_counter() - start

        warm = {conv: run(conv) for conv in (conv_nd, fft_conv_nd)}
        if max(warm.values()) > HOPELESS * min(warm.values()):
            return warm[fft_conv_nd] < warm[conv_nd]
        times = {conv: [] for conv in warm}
        for _ in range(self.repeats):
            for conv in times:
                times[conv].append(run(conv))
        return statistics.median(times[fft_conv_nd]) < statistics.median(times[conv_nd])


TIMER = PathTimer()   # shared by every FlexConv of the process, as cudnn.benchmark's cache is


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the policies: whether a FlexConv in a mode convolves x with kernel through the FFT ----------------------------
def _sizes(x, kernel) -> tuple[int, int, int, list[int], list[int]]:
    """The shapes the cost model reads, as ints: under torch.compile a size made symbolic (a batch size that
    changed) is specialized here rather than carried into the model's float arithmetic."""
    return int(x.shape[0]), int(x.shape[1]), int(kernel.shape[0]), [int(n) for n in x.shape[2:]], \
        [int(k) for k in kernel.shape[2:]]


def _modelled(x, kernel, causal) -> bool:
    return prefer_fft(*_sizes(x, kernel), causal)


def _timed(x, kernel, bias, causal) -> bool:
    if torch.compiler.is_compiling() or torch.are_deterministic_algorithms_enabled():
        return _modelled(x, kernel, causal)
    return TIMER.prefers_fft(x, kernel, bias, causal)


def _auto(x, kernel, bias, causal) -> bool:
    if x.device.type != "cpu" or x.dim() == 5:
        return _timed(x, kernel, bias, causal)
    spatial, fft = path_costs(*_sizes(x, kernel), causal)
    if max(spatial, fft) < NEAR_TIE * min(spatial, fft):
        return _timed(x, kernel, bias, causal)
    return fft < spatial


POLICIES = {"spatial": lambda x, kernel, bias, causal: False, "fft": lambda x, kernel, bias, causal: True,
            "auto": _auto, "benchmark": _timed}


def uses_fft(mode: str, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> bool:
    """Whether a FlexConv in `mode` (one of CONV_MODES) convolves x with kernel through the FFT."""
    return POLICIES[mode](x, kernel, bias, causal)
