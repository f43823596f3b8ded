"""Pure convolution functions used by FlexConv: spatial or FFT, 'same' or causal, for D = 1, 2, 3."""
from __future__ import annotations

import math
import statistics
import time

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# Seconds per unit of each term of `path_terms` for a training step (forward + backward), fitted to the measured
# FFT/spatial time ratios of a sweep of shapes (benchmarks/bench_path_choice.py --fit: robust least squares on
# log ratios, which the load of a shared machine does not bias; CPU, 1 thread, torch 2.14.1, oneDNN and
# pocketfft; results/benchmarks/path_choice_fit.json), the contraction held to at least the cost of the 2-D direct
# multiply-adds it replaces. Ratios fix them up to one common scale, set so that the predicted spatial 2-D times
# match the measured ones.
SPATIAL_COEF = (1.589e-11, 3.283e-11, 3.695e-12, 5.989e-10, 1.84e-09, 4.295e-4)
FFT_COEF = (4.544e-10, 1.174e-09, 6.566e-11, 4.103e-16, 1.074e-08, 8.69e-4)


def conv_nd(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """Cross-correlation of x (B, C_in, *n) with kernel (C_out, C_in, *k), output (B, C_out, *n).

    causal (1-D only): the last kernel element multiplies the current step; the input is padded on the left.
    Otherwise 'same' padding with an odd kernel centred on each output position."""
    if causal:
        x = F.pad(x, (kernel.shape[-1] - 1, 0))
        return _CONV[1](x, kernel, bias)
    return _CONV[kernel.dim() - 2](x, kernel, bias, padding=[k // 2 for k in kernel.shape[2:]])


def fft_size(n: int) -> int:
    """The smallest 5-smooth integer ≥ n (a length with only factors 2, 3, 5, where real FFTs are fastest)."""
    size = n
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 1


def fft_lengths(input_size, kernel_size, causal: bool) -> list[int]:
    """Transform length per dim: a circular correlation over L ≥ n + h points, h the kernel's reach into the
    past/left (k - 1 causal, k // 2 'same'), wraps only zeros into the n kept outputs, so no input padding and
    no n + k - 1 linear length is needed."""
    return [fft_size(nd + (kd - 1 if causal else kd // 2)) for nd, kd in zip(input_size, kernel_size)]


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def fft_conv_nd(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """The same operation as `conv_nd`, computed with real FFTs: a circular cross-correlation over
    `fft_lengths` points per dim, the first n outputs kept. The kernel's reach h (its centre, causal: its last
    element) is aligned by shifting the smaller operand: with B ≤ C_out the input is padded by h on the left,
    otherwise the kernel is rolled by -h (a kernel longer than L losing only taps that never meet the input).
    The channels are contracted per frequency as one real batched matmul (`contract_channels`). Half and
    bfloat16 operands (e.g. under autocast) are transformed in float32, which FFTs need, and the result is
    returned in the input's dtype, as the spatial path under autocast returns it."""
    if x.dtype in _LOW_PRECISION or kernel.dtype in _LOW_PRECISION:
        with torch.autocast(x.device.type, enabled=False):
            y = fft_conv_nd(x.float(), kernel.float(), None if bias is None else bias.float(), causal)
        return y.to(x.dtype) if x.dtype in _LOW_PRECISION else y
    dims = kernel.dim() - 2
    n = x.shape[2:]
    k = kernel.shape[2:]
    lengths = fft_lengths(n, k, causal)
    axes = tuple(range(-dims, 0))
    reach = [kd - 1 if causal else kd // 2 for kd in k]
    pad = []
    shift_input = x.shape[0] <= kernel.shape[0]
    if shift_input:
        for r in reversed(reach):
            pad += [r, 0]
        x = F.pad(x, pad)
    else:
        for kd, ld in zip(reversed(k), reversed(lengths)):
            pad += [0, ld - kd]
        kernel = torch.roll(F.pad(kernel, pad), [-r for r in reach], dims=axes)
    x_f = torch.fft.rfftn(x, s=lengths, dim=axes)
    k_f = torch.fft.rfftn(kernel, s=lengths, dim=axes)
    y_f = contract_channels(x_f, k_f, block_of_input=shift_input)
    y = torch.fft.irfftn(y_f, s=lengths, dim=axes)
    y = y[(..., *[slice(0, nd) for nd in n])]
    if bias is not None:
        y = y + bias.view(1, -1, *[1] * dims)
    return y


def contract_channels(x_f: torch.Tensor, k_f: torch.Tensor, block_of_input: bool = False) -> torch.Tensor:
    """Y[b, o, f] = Σ_i X[b, i, f] · conj(K[o, i, f]) (cross-correlation), as one real batched matmul over the
    frequencies, with the 2×2 real block built from the smaller operand:
    [Xr Xi] @ [[Kr, -Ki], [Ki, Kr]] = [Yr Yi], or [[Xr, Xi], [Xi, -Xr]] @ [Kr; Ki] = [Yr; Yi] (block_of_input).
    On CPU, torch's complex einsum/bmm runs one copy and one small product per frequency; the real block made the
    whole FFT convolution 1.6-6x faster, and building it from the input when B ≤ C_out another 1.2-1.5x."""
    b, c_in, *spectrum = x_f.shape
    c_out = k_f.shape[0]
    x = torch.view_as_real(x_f.reshape(b, c_in, -1)).permute(2, 0, 3, 1)               # (F, B, 2, C_in)
    if block_of_input:
        swapped = torch.stack([x[:, :, 1], -x[:, :, 0]], dim=2)                         # [Xi, -Xr]
        data = torch.cat([x, swapped], dim=1).reshape(x.shape[0], 2 * b, 2 * c_in)
        k = torch.view_as_real(k_f.reshape(c_out, c_in, -1)).permute(2, 3, 1, 0).reshape(-1, 2 * c_in, c_out)
        y = torch.bmm(data, k).view(-1, 2, b, c_out).permute(2, 3, 0, 1)
    else:
        k = torch.view_as_real(k_f.reshape(c_out, c_in, -1)).permute(2, 1, 0, 3)     # (F, C_in, C_out, 2)
        kr, ki = k[..., 0], k[..., 1]
        block = torch.cat([torch.cat([kr, -ki], dim=2), torch.cat([ki, kr], dim=2)], dim=1)  # (F, 2C_in, 2C_out)
        y = torch.bmm(x.reshape(-1, b, 2 * c_in), block).view(-1, b, 2, c_out).permute(1, 3, 0, 2)
    return torch.view_as_complex(y.contiguous()).reshape(b, c_out, *spectrum)


CONV_MODES = ("auto", "spatial", "fft", "benchmark")


NEAR_TIE = 1.5   # "auto" on CPU measures when the cost model's two predictions lie within this factor


def choose_fft(mode: str, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> bool:
    """Whether a FlexConv in `mode` convolves x with kernel through the FFT. "benchmark": the measured choice
    (`measured_fft`). "auto": for 1-D and 2-D on CPU, where it was fitted and validated, the cost model
    (`path_costs`: free, the same on every run), except at near ties (predictions within `NEAR_TIE`×, where the
    model errs by up to 1.9×), which are measured once per shape signature; for 3-D (few shapes in its fit: it
    misjudges 3-D FFTs at 16-32 channels by up to 2.5×) and on other devices (no model fitted there), the measured
    choice. Under torch.compile, which cannot time, always the cost model."""
    if mode == "spatial":
        return False
    if mode == "fft":
        return True
    b, c_in, *n = x.shape
    measure = mode == "benchmark" or x.device.type != "cpu" or len(n) == 3
    if torch.compiler.is_compiling():
        return prefer_fft(b, c_in, kernel.shape[0], n, kernel.shape[2:], causal)
    if measure:
        return measured_fft(x, kernel, bias, causal)
    spatial, fft = path_costs(b, c_in, kernel.shape[0], n, kernel.shape[2:], causal)
    if max(spatial, fft) < NEAR_TIE * min(spatial, fft):
        return measured_fft(x, kernel, bias, causal)
    return fft < spatial


def path_terms(batch: int, in_channels: int, out_channels: int, input_size, kernel_size,
               causal: bool = False) -> dict[str, list[float]]:
    """The terms of each path's cost. Spatial: the direct multiply-adds B·C_in·C_out·Πn·Πk (one term per D, as
    oneDNN's efficiency differs by D), the per-tap traffic B·(C_in + C_out)·Πn·Πk (small channel counts run below
    peak), B·C_out·Πn·Πk for 1-D (whose long-kernel backward runs further below), and a constant. FFT, over
    M = ΠL points (`fft_lengths`): the transforms of the B·(C_in + C_out) signals and of the C_in·C_out kernels
    (∝ M·log₂M each), the channel contraction B·C_in·C_out·M, the kernel spectra's and the signals' copies
    (C_in·C_out·M and B·(C_in + C_out)·M), and a constant."""
    dims = len(kernel_size)
    n, k = math.prod(input_size), math.prod(kernel_size)
    m = math.prod(fft_lengths(input_size, kernel_size, causal))
    log_m = max(math.log2(m), 1.0)
    macs = batch * in_channels * out_channels * n * k
    signals, kernels = batch * (in_channels + out_channels), in_channels * out_channels
    return {"spatial": [macs * (dims == 1), macs * (dims == 2), macs * (dims == 3), signals * n * k,
                        batch * out_channels * n * k * (dims == 1), 1.0],
            "fft": [signals * m * log_m, kernels * m * log_m, batch * kernels * m, kernels * m, signals * m, 1.0]}


def path_costs(batch: int, in_channels: int, out_channels: int, input_size, kernel_size,
               causal: bool = False) -> tuple[float, float]:
    """Predicted seconds of a training step of (spatial, FFT): `path_terms` · SPATIAL_COEF, FFT_COEF."""
    terms = path_terms(batch, in_channels, out_channels, input_size, kernel_size, causal)
    return (sum(a * t for a, t in zip(SPATIAL_COEF, terms["spatial"])),
            sum(a * t for a, t in zip(FFT_COEF, terms["fft"])))


def prefer_fft(batch: int, in_channels: int, out_channels: int, input_size, kernel_size, causal: bool = False) -> bool:
    """The cost model of conv_mode="auto": FFT when its predicted time (`path_costs`) is the smaller."""
    spatial, fft = path_costs(batch, in_channels, out_channels, input_size, kernel_size, causal)
    return fft < spatial


_MEASURED: dict[tuple, bool] = {}
HOPELESS = 20.0   # a path whose warm-up run takes this many times the other's is not timed again


def measured_fft(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool,
                 repeats: int = 3) -> bool:
    """The measured choice, as cudnn.benchmark makes it: the first call with a new signature (device, dtype,
    shapes, causal, whether autograd will run) times both paths on detached copies (forward, and backward when
    autograd will run; median of `repeats` after a warm-up) and keeps the faster for that signature. A path whose
    warm-up run took `HOPELESS` times the other's is not run again (a 3-D spatial convolution with a kernel as
    large as its input can take minutes on a CPU; the cost model cannot rule it out beforehand, since it
    misjudges 3-D)."""
    grad = torch.is_grad_enabled() and (x.requires_grad or kernel.requires_grad)
    key = (x.device, x.dtype, tuple(x.shape), tuple(kernel.shape), bias is not None, causal, grad,
           torch.is_autocast_enabled(x.device.type))
    if key not in _MEASURED:
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
            _MEASURED[key] = warm[fft_conv_nd] < warm[conv_nd]
            return _MEASURED[key]
        times = {conv: [] for conv in warm}
        for _ in range(repeats):
            for conv in times:
                times[conv].append(run(conv))
        _MEASURED[key] = statistics.median(times[fft_conv_nd]) < statistics.median(times[conv_nd])
    return _MEASURED[key]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
