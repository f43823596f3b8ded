"""Looking inside a trained model: its FlexConvs by depth, their masks (Fig. 6), kernel spectra and analytic
maximum frequencies against the Nyquist frequency (Fig. 8, Table 4).

Frequencies are in cycles per unit of the kernel coordinate, which spans [-1, 1], as in flexlib.layers.alias: a kernel of
k samples has spacing 2 / (k - 1), so its FFT reaches f_Nyq(k) = (k - 1) / 4 (eq. 24).
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.alias import flexconv_max_frequency, magnet_max_frequency, mask_max_frequency, nyquist_frequency
from ..layers.flexconv import FlexConv
from ..layers.grids import grid, kernel_size_for


def flexconv_layers(model: nn.Module) -> list[tuple[str, FlexConv]]:
    """Every FlexConv/CKConv of `model` with its module path, in the order of the forward pass (depth)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, FlexConv)]


@torch.no_grad()
def frequency_table(model: nn.Module, input_size: int) -> list[dict]:
    """Per FlexConv: f⁺_MAGNet (eq. 21), the mask term and f⁺_FlexConv (eq. 22), and f_Nyq(k) (eq. 24) for the
    kernel size k that an input of `input_size` samples per dimension gives."""
    k = kernel_size_for(input_size)
    rows = []
    for depth, (name, conv) in enumerate(flexconv_layers(model)):
        row = {"layer": name, "depth": depth, "k": k, "f_nyquist": nyquist_frequency(k),
               "f_magnet": float(magnet_max_frequency(conv.kernel_net))}
        if conv.mask is not None:
            row["f_mask"] = float(mask_max_frequency(conv.mask))
        row["f_flexconv"] = float(flexconv_max_frequency(conv))
        rows.append(row)
    return rows


@torch.no_grad()
def strongest_kernel(conv: FlexConv, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The masked, uncropped kernel of the (out, in) channel pair with the largest norm, sampled on `size` points
    per dimension over [-1, 1]^D, and that pair's indices."""
    kernel = conv.sample_kernel(size)
    norms = kernel.flatten(2).norm(dim=-1)
    index = divmod(int(norms.argmax()), kernel.shape[1])
    return kernel[index].cpu(), index


def amplitude_spectrum(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|FFT| of a kernel sampled on k points per dimension over [-1, 1]^D, zero frequency centred, and the
    frequency of each bin in cycles per unit (the same for every dimension of a square kernel)."""
    k = kernel.shape[-1]
    spectrum = torch.fft.fftshift(torch.fft.fftn(kernel.double()).abs())
    freqs = torch.fft.fftshift(torch.fft.fftfreq(k, d=2.0 / (k - 1)))
    return spectrum.float(), freqs.float()


@torch.no_grad()
def mask_on_grid(conv: FlexConv, size: int = 65) -> torch.Tensor:
    """w_gauss (eq. 1) of `conv` on `size` points per dimension over [-1, 1]^D."""
    if conv.mask is None:
        raise ValueError(f"{type(conv).__name__} has no mask (a CKConv's kernel spans the whole input)")
    p = conv.mask.mean_param
    axes = [grid(size, p.device, p.dtype)] * conv.data_dim
    coords = torch.stack([m.reshape(-1) for m in torch.meshgrid(*axes, indexing="ij")], dim=-1)
    return conv.mask(coords).reshape((size,) * conv.data_dim).cpu()


@torch.no_grad()
def mask_table(model: nn.Module, input_size: int) -> list[dict]:
    """Per FlexConv: μ and σ of its mask per dimension, and the kernel size dynamic cropping keeps (mask > the
    crop threshold) on an input of `input_size` samples per dimension (§5)."""
    k = kernel_size_for(input_size)
    rows = []
    for depth, (name, conv) in enumerate(flexconv_layers(model)):
        if conv.mask is None:
            continue
        row = {"layer": name, "depth": depth}
        for d, (mu, sigma) in enumerate(zip(conv.mask.mean.tolist(), conv.mask.sigma.tolist())):
            row[f"mu[{d}]"], row[f"sigma[{d}]"] = mu, sigma
        row["cropped_size"] = "x".join(str(len(a)) for a in conv.crop_axes((k,) * conv.data_dim))
        rows.append(row)
    return rows


def receptive_field(model: nn.Module, input_size) -> int | tuple[int, ...]:
    """The receptive field (samples per dimension) of the longest path through `model`'s convolutions on an input of
    `input_size`: 1 + Σ (k - 1) over its convolutions in order, with each FlexConv's kernel as dynamic cropping keeps
    it, a CKConv's as long as the input, and nn.Conv's own size (1×1 shortcuts add nothing). An int for 1-D, a
    tuple per dimension otherwise; capped at nothing (it may exceed the input, as a stack of kernels can)."""
    input_size = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    total = [1] * len(input_size)
    for module in model.modules():
        if isinstance(module, FlexConv):
            full = module.full_kernel_size(input_size)
            sizes = [b - a for a, b in module.crop_ranges(full)]
        elif isinstance(module, nn.modules.conv._ConvNd):
            sizes = list(module.kernel_size)
        else:
            continue
        total = [t + k - 1 for t, k in zip(total, sizes)]
    return total[0] if len(total) == 1 else tuple(total)


@torch.no_grad()
def kernel_steps(conv: FlexConv, input_size: int, pair: tuple[int, int] | None = None) -> dict:
    """Fig. 7 for one FlexConv on an input of `input_size` samples per dimension, one (out, in) channel pair (default:
    the pair whose masked kernel has the largest norm): (a) MLP^ψ sampled on the whole grid, (b) the mask w_gauss,
    (c) their product ψ, (d) ψ cropped where the mask exceeds the crop threshold (dynamic cropping). (a)-(c) span
    the full k-point grid (k from the input size, App. A.2); (d) is the kernel the layer convolves with."""
    if conv.mask is None:
        raise ValueError(f"{type(conv).__name__} has no mask: Fig. 7 needs a FlexConv")
    size = conv.full_kernel_size((input_size,) * conv.data_dim)
    p = next(conv.parameters())
    axes = [grid(k, p.device, p.dtype) for k in size]
    coords = torch.stack([m.reshape(-1) for m in torch.meshgrid(*axes, indexing="ij")], dim=-1)
    mlp = conv.kernel_net(coords).reshape(*size, conv.out_channels, conv.in_channels).movedim((-2, -1), (0, 1))
    mask = conv.mask(coords).reshape(size)
    product = mlp * mask
    if pair is None:
        pair = divmod(int(product.flatten(2).norm(dim=-1).argmax()), conv.in_channels)
    ranges = conv.crop_ranges(size)
    cropped = product[pair][tuple(slice(a, b) for a, b in ranges)]
    return {"mlp": mlp[pair].cpu(), "mask": mask.cpu(), "product": product[pair].cpu(), "cropped": cropped.cpu(),
            "pair": pair, "ranges": ranges, "kernel_size": size}


def single_tap_sigma(input_size: int, threshold: float = 0.1) -> float:
    """The σ below which a centred mask's crop keeps only its centre tap on the kernel grid of an input of
    `input_size` samples (App. A.2): the grid spacing 2 / (k - 1) over the crop radius sqrt(-2 ln t). There the
    kept tap has w_gauss = 1 whatever σ is, so σ gets (almost) no gradient."""
    from ..layers.mask import threshold_radius
    k = kernel_size_for(input_size)
    return 2.0 / (k - 1) / threshold_radius(threshold)


def centred_crop_taps(mu: float, sigma: float, input_size: int, threshold: float = 0.1) -> int:
    """Taps kept along one dimension by a centred FlexConv's crop (flexlib.layers.grids.crop_range) for a mask (μ, σ) on
    the kernel grid of an input of `input_size` samples: what `mask_table`'s cropped_size gives, from μ and σ alone
    (e.g. from a run's per-epoch metrics)."""
    from ..layers.grids import crop_range
    from ..layers.mask import threshold_radius
    half = threshold_radius(threshold) * abs(sigma)
    start, stop = crop_range(kernel_size_for(input_size), mu - half, mu + half, causal=False)
    return stop - start
