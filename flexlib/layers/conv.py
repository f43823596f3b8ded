"""Pure convolution functions used by FlexConv: spatial or FFT, 'same' or causal, for D = 1, 2, 3. Which of the
two a layer runs is decided in flexlib.layers.path_choice."""
from __future__ import annotations

import torch
import torch.nn.functional as F

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


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
