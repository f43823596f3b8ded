"""Dynamic cropping (§5) for many layers at once: their crops read from the device in one transfer, exact in eager
mode, rounded up to a few sizes under torch.compile.

A layer with a learned kernel size (a FlexConv's mask; an N-Jet's σ, flexlib.models.njet) says whether it crops
(`has_crop`), which parameters decide the crop (`crop_parameters()`: 1-D tensors) and which index ranges of its
kernel grid their values keep (`crop_from(values, full)`: [start, stop) per dim of a grid of `full` points, centred,
or ending at the last point when `causal`).

Under torch.compile a crop is a shape, and a compiled graph is specialized to its shapes: every new crop size of any
layer compiles the model again (as the masks grow, hundreds of times over a run), and a size that reaches the graph
as a Python int is turned symbolic by dynamo's automatic dynamic shapes once it has changed (where a 'same'
convolution's padding and the path choice's cost model cannot follow). So compiled code never sees a crop as an
int. `read_crops(..., compiled=True)` hands each layer a 0/1 tensor (`crop_indicator`), marked static
(torch._dynamo.mark_static), whose shape is the crop rounded up to a box (half-width or causal length rounded up by
`bucket`) and whose ones are the exact crop: the kernel sampled on that box times the indicator is the exact kernel
padded with zeros, which gives the same 'same' or causal convolution, forward and backward, as the exact kernel
(tests/test_compile.py). A layer's box only grows (per input size), so a run compiles at most `recompile_bound`
times. The price: while compiled, up to 1.3× the taps of the exact crop per dim (a crop of 19 computed as 25).
"""
from __future__ import annotations

import weakref
from typing import Sequence

import torch

# Half-widths (centred kernels) and lengths (causal kernels) a crop is rounded up to under torch.compile: 0-4, then
# 2^j and 3·2^(j-1) (6, 8, 12, 16, 24, 32, ...), a ratio of at most 1.5 between neighbours.
SMALL = 4


def bucket(n: int) -> int:
    """The smallest of 0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... that is ≥ n."""
    if n <= SMALL:
        return max(n, 0)
    j = (n - 1).bit_length() - 1          # 2^j < n ≤ 2^(j+1)
    return 3 << (j - 1) if n <= 3 << (j - 1) else 2 << j


def bucketed_range(full: int, start: int, stop: int, causal: bool) -> tuple[int, int]:
    """The range ⊇ [start, stop) of a `full`-point grid that the compiled kernel is sampled on: a centred crop's
    half-width, a causal crop's length rounded up to `bucket`, capped at the full grid."""
    if causal:
        length = min(full, bucket(stop - start))
        return full - length, full
    centre = full // 2
    half = min(full // 2, bucket(max(centre - start, stop - 1 - centre)))
    return centre - half, centre + half + 1


def box_ranges(full, box, causal: bool) -> list[tuple[int, int]]:
    """The ranges of a compiled crop's box (`crop_indicator`'s shape) in a grid of `full` points per dim."""
    if causal:
        return [(k - b, k) for k, b in zip(full, box)]
    return [(k // 2 - b // 2, k // 2 + b // 2 + 1) for k, b in zip(full, box)]


def crop_ranges(layers: Sequence, fulls) -> list[list[tuple[int, int]]]:
    """Each layer's `crop_from`, the parameters of all layers read from the device in one transfer (per device);
    [(0, k), ...] for a layer that does not crop."""
    cropped = [i for i, layer in enumerate(layers) if layer.has_crop]
    by_device: dict = {}
    for i in cropped:
        params = layers[i].crop_parameters()
        by_device.setdefault(params[0].device, []).append((i, params))
    out = [[(0, k) for k in full] for full in fulls]
    with torch.no_grad():
        for members in by_device.values():
            values = torch.cat([p if p.dim() == 1 else p.reshape(-1)    # under no_grad: no detach, no view
                                for _, params in members for p in params]).tolist()  # the one read
            at = 0
            for i, params in members:
                n = sum(p.numel() for p in params)
                out[i] = layers[i].crop_from(values[at:at + n], fulls[i])
                at += n
    return out


_GROWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # layer -> {full size: its box so far}


def crop_indicator(layer, full, ranges, device, dtype) -> torch.Tensor:
    """The compiled crop of `layer`: zeros over its box (`bucketed_range` per dim, never smaller than its box of an
    earlier call at this `full` size), ones on the exact `ranges`; marked static for torch.compile."""
    box = [bucketed_range(k, a, b, layer.causal) for k, (a, b) in zip(full, ranges)]
    grown = _GROWN.setdefault(layer, {})
    earlier = grown.get(tuple(full))
    if earlier is not None:
        box = [(min(a, c), max(b, d)) for (a, b), (c, d) in zip(box, earlier)]
    grown[tuple(full)] = box
    indicator = torch.zeros([b - a for a, b in box], device=device, dtype=dtype)
    indicator[tuple(slice(a - ba, b - ba) for (a, b), (ba, _) in zip(ranges, box))] = 1.0
    torch._dynamo.mark_static(indicator)
    return indicator


@torch.compiler.disable
def _compiled_crops(layers, fulls) -> list:
    ranges = crop_ranges(layers, fulls)
    out = []
    for layer, full, r in zip(layers, fulls, ranges):
        if not layer.has_crop:
            out.append(None)
            continue
        p = layer.crop_parameters()[0]
        out.append(crop_indicator(layer, full, r, p.device, p.dtype))
    return out


def read_crops(layers: Sequence, fulls, compiled: bool = False) -> list:
    """The crop of every layer for kernels of `full` points per dim, read from the device in one transfer: exact
    index ranges, or with `compiled=True` a static 0/1 tensor per cropping layer (`crop_indicator`; None for one
    that does not crop). Call it with `compiled=torch.compiler.is_compiling()` at the top of a forward: under
    torch.compile it is the forward's one graph break, before any tensor work, so that the kernels and the
    convolutions after it are one graph (a kernel handed across a graph break would be a graph input whose shape
    dynamo may make symbolic)."""
    fulls = [tuple(full) for full in fulls]
    if not compiled:
        return crop_ranges(layers, fulls)
    if not any(layer.has_crop for layer in layers):   # nothing to read: no graph break
        return [None] * len(layers)
    return _compiled_crops(list(layers), fulls)


def box_sizes(full: int, causal: bool) -> list[int]:
    """Every size a compiled crop's box can take along a dim of `full` grid points."""
    if causal:
        return sorted({min(full, bucket(n)) for n in range(1, full + 1)})
    return sorted({2 * min(full // 2, bucket(h)) + 1 for h in range(full // 2 + 1)})


def recompile_bound(layers: Sequence, fulls, ranges) -> int:
    """How many crop configurations a compiled model can meet at these kernel sizes from its exact crops now
    (`read_crops`): 1 + the number of box sizes above each layer's current box, summed over layers and dims.
    Boxes only grow, and each new configuration moves at least one of them up."""
    steps = 0
    for layer, full, crop in zip(layers, fulls, ranges):
        if layer.has_crop:
            for k, (a, b) in zip(full, crop):
                lo, hi = bucketed_range(k, a, b, layer.causal)
                steps += sum(size > hi - lo for size in box_sizes(k, layer.causal))
    return 1 + steps
