"""Pure convolution functions used by FlexConv: spatial or FFT, 'same' or causal, for D = 1, 2, 3."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# FFT flops count for this many direct-convolution flops, per data_dim D. Fitted on CPU (2 threads, torch 2.14.1,
# oneDNN) by benchmarks/bench_fft_vs_spatial.py: 1-D needs < 1.9 (k = 17 at L = 1024 is 2x faster by FFT) and
# > 1.0 (k = 9); 2-D needs > 2.6 (k = 9 at 64x64 is faster spatially) and < 4.5 (k = 17). D = 3 is unmeasured.
FFT_COST_FACTOR = {1: 1.5, 2: 3.5, 3: 3.5}
# Below this many direct multiply-adds the FFT path's fixed cost (5 transforms and reshapes: ~30-80 ms per
# training step at the sweep's sizes, nearly independent of k) always loses: 1-D k = 9 at 19M MACs is 3x
# faster spatially. It also keeps short sequences on the exact (causal to the last bit) spatial path.
FFT_MIN_MACS = 2e7


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


def fft_conv_nd(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """The same operation as `conv_nd`, computed with real FFTs: a circular cross-correlation over
    `fft_lengths` points per dim with the kernel rolled so that its centre (causal: its last element) sits at
    index 0 (a kernel longer than L loses only taps that never meet the input), the channel contraction done per
    frequency as one real batched matmul (`contract_channels`), and the first n outputs kept."""
    dims = kernel.dim() - 2
    n = x.shape[2:]
    k = kernel.shape[2:]
    lengths = fft_lengths(n, k, causal)
    axes = tuple(range(-dims, 0))
    reach = [kd - 1 if causal else kd // 2 for kd in k]
    pad = []
    for kd, ld in zip(reversed(k), reversed(lengths)):
        pad += [0, ld - kd]
    kernel = torch.roll(F.pad(kernel, pad), [-r for r in reach], dims=axes)
    x_f = torch.fft.rfftn(x, s=lengths, dim=axes)
    k_f = torch.fft.rfftn(kernel, s=lengths, dim=axes)
    y_f = contract_channels(x_f, k_f)
    y = torch.fft.irfftn(y_f, s=lengths, dim=axes)
    y = y[(..., *[slice(0, nd) for nd in n])]
    if bias is not None:
        y = y + bias.view(1, -1, *[1] * dims)
    return y


def contract_channels(x_f: torch.Tensor, k_f: torch.Tensor) -> torch.Tensor:
    """Y[b, o, f] = Σ_i X[b, i, f] · conj(K[o, i, f]) (cross-correlation), as one real batched matmul over the
    frequencies: [Xr Xi] @ [[Kr, -Ki], [Ki, Kr]] = [Yr Yi]. On CPU, torch's complex einsum/bmm runs one copy and
    one small product per frequency; this made the whole FFT convolution 1.6-6x faster (bench_fft_vs_spatial)."""
    b, c_in, *spectrum = x_f.shape
    c_out = k_f.shape[0]
    x = torch.view_as_real(x_f.reshape(b, c_in, -1)).permute(2, 0, 3, 1).reshape(-1, b, 2 * c_in)
    k = torch.view_as_real(k_f.reshape(c_out, c_in, -1)).permute(2, 1, 0, 3)  # (F, C_in, C_out, 2)
    kr, ki = k[..., 0], k[..., 1]
    block = torch.cat([torch.cat([kr, -ki], dim=2), torch.cat([ki, kr], dim=2)], dim=1)  # (F, 2C_in, 2C_out)
    y = torch.bmm(x, block).reshape(-1, b, 2, c_out).permute(1, 3, 0, 2).contiguous()
    return torch.view_as_complex(y).reshape(b, c_out, *spectrum)


def prefer_fft(batch: int, in_channels: int, out_channels: int, input_size, kernel_size, causal: bool = False) -> bool:
    """Cost model for the automatic choice. Direct convolution: B·C_in·C_out·Πn·Πk multiply-adds. FFT path:
    transforms of the B·C_in inputs, B·C_out outputs and C_in·C_out kernels over M = ΠL points (`fft_lengths`;
    ~2.5·M·log₂M each), plus the complex channel contraction over the M/2 half-spectrum (4 real multiply-adds
    each); weighted by FFT_COST_FACTOR[D], fitted to measured times (see there); never below FFT_MIN_MACS."""
    n = math.prod(input_size)
    k = math.prod(kernel_size)
    m = math.prod(fft_lengths(input_size, kernel_size, causal))
    spatial = batch * in_channels * out_channels * n * k
    transforms = 2.5 * (batch * (in_channels + out_channels) + in_channels * out_channels) * m * max(math.log2(m), 1.0)
    contraction = 2.0 * batch * in_channels * out_channels * m
    return spatial > FFT_MIN_MACS and FFT_COST_FACTOR[len(kernel_size)] * (transforms + contraction) < spatial
