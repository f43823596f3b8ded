"""Where a FlexConv samples its kernel: the grid over [-1, 1]^D for an input size (App. A.2) and the part of it
that dynamic cropping keeps (§5)."""
from __future__ import annotations

import math

import torch

GRIDS = ("paper", "official")


def kernel_size_for(input_size: int, grid: str = "paper", causal: bool = False) -> int:
    """Kernel size that follows the input. "paper" (App. A.2): odd sizes as they are, even sizes + 1.

    "official": a causal kernel has as many points as the input (the authors' `horizon="same"`; they then pad one
    zero tap on the far past, which changes no output); a centred kernel stays odd as in "paper" (the authors'
    centred convolutions refuse even kernels and their commands give odd horizons, e.g. 33 at 32×32)."""
    if grid == "official" and causal:
        return input_size
    return input_size if input_size % 2 == 1 else input_size + 1


def grid(size: int, device=None, dtype=None) -> torch.Tensor:
    """`size` equidistant kernel positions over [-1, 1]."""
    return torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)


def crop_range(size: int, low: float, high: float, causal: bool) -> tuple[int, int]:
    """Index range [start, stop) of the `size`-point grid over [-1, 1] kept by the crop to [low, high].

    Non-causal: symmetric around the centre to the largest |root|, so the kernel stays odd and centred.
    Causal: only the past side (x < low) is cut; position +1 (the current step) is always kept."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"crop_range: the mask's support [{low}, {high}] is not finite; its mean or sigma "
                         f"has diverged (NaN or inf)")
    if size == 1:
        return 0, 1
    step = 2.0 / (size - 1)
    tol = 1e-6
    if causal:
        start = max(0, min(size - 1, math.ceil((low + 1.0) / step - tol)))
        return start, size
    half = max(abs(low), abs(high))
    keep = min(size // 2, math.floor(half / step + tol))
    centre = size // 2
    return centre - keep, centre + keep + 1


_COORDS: dict = {}


def coordinates(kernel_size, ranges, device, dtype) -> torch.Tensor:
    """Coordinates (N, D) of the product grid: per dim d, points ranges[d] = [start, stop) of the
    kernel_size[d]-point grid over [-1, 1], in row-major order. Cached per signature (they are constants)."""
    if torch.compiler.is_compiling():   # computed in the graph: a lookup would make the compiled code depend on
        return _product_grid(kernel_size, ranges, device, dtype)   # (and recompile with) the cache's contents
    key = (tuple(kernel_size), tuple(ranges), torch.device(device), dtype)
    coords = _COORDS.get(key)
    if coords is None:
        coords = _product_grid(kernel_size, ranges, device, dtype)
        if not torch.is_inference_mode_enabled():   # inference tensors cannot enter autograd
            if len(_COORDS) >= 256:
                _COORDS.clear()
            _COORDS[key] = coords
    return coords


def _product_grid(kernel_size, ranges, device, dtype) -> torch.Tensor:
    axes = [grid(k, device, dtype)[a:b] for k, (a, b) in zip(kernel_size, ranges)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)
