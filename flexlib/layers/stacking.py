"""Per-layer tensors gathered into one batched tensor, and per-layer views handed back out, with backwards of one
operation per tensor (torch.stack's backward dispatches unbind → select → as_strided per input; indexing or
as_strided under autograd allocates a zero tensor per output). Used by flexlib.layers.fused, so that the kernels of
many layers cost few operations.
"""
from __future__ import annotations

import math

import torch


def contiguous_strides(shape) -> list[int]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return strides[::-1]


class _Stack(torch.autograd.Function):
    """(M, rows, *rest) from M tensors (rows_i, *rest), zero-padded to `rows` along their first dim."""

    @staticmethod
    def forward(ctx, rows, view, *tensors):
        ctx.shapes = [t.shape for t in tensors]
        item = (rows, *tensors[0].shape[1:]) if tensors[0].dim() else ()
        if any(t.shape[1:] != item[1:] or (t.dim() and t.shape[0] > rows) or t.dim() != len(item) for t in tensors):
            raise ValueError(f"stacked.stack: tensors of shapes {[tuple(s) for s in ctx.shapes]} do not fit "
                             f"{tuple(item)}")
        if all(t.shape == item for t in tensors):
            out = torch.stack(tensors)
        else:
            out = tensors[0].new_zeros(len(tensors), *item)
            for i, t in enumerate(tensors):
                out.as_strided(t.shape, contiguous_strides(t.shape), i * math.prod(item)).copy_(t)
        ctx.item = math.prod(item)
        return out.view(view) if view is not None else out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        base = grad.storage_offset()
        grads = tuple(grad.as_strided(shape, contiguous_strides(shape), base + i * ctx.item) if needed else None
                      for i, (shape, needed) in enumerate(zip(ctx.shapes, ctx.needs_input_grad[2:])))
        return (None, None, *grads)


def stack(tensors: list[torch.Tensor], rows: int | None = None, view=None) -> torch.Tensor:
    """torch.stack(tensors) (the first dims zero-padded to `rows` if given), viewed as `view` if given; each
    input's gradient is one view of the stacked gradient."""
    if rows is None:
        rows = tensors[0].shape[0] if tensors[0].dim() else None
    if torch.compiler.is_compiling():   # the compiler fuses plain operations (this Function saves eager dispatches)
        out = torch.stack([t if not t.dim() or t.shape[0] == rows else
                           torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])]) for t in tensors])
        return out.view(view) if view is not None else out
    return _Stack.apply(rows, None if view is None else tuple(view), *tensors)


class _Views(torch.autograd.Function):
    """Views (size, stride, offset) into a contiguous tensor; the backward writes each view's gradient into one
    zero tensor of the base's shape."""

    @staticmethod
    def forward(ctx, base, layouts):
        ctx.set_materialize_grads(False)
        ctx.shape, ctx.layouts = base.shape, layouts
        start = base.storage_offset()
        return tuple(base.as_strided(size, stride, start + offset) for size, stride, offset in layouts)

    @staticmethod
    def backward(ctx, *grads):
        present = [g for g in grads if g is not None]
        if not present:
            return None, None
        out = present[0].new_zeros(ctx.shape)
        for g, (size, stride, offset) in zip(grads, ctx.layouts):
            if g is not None:
                out.as_strided(size, stride, offset).copy_(g)
        return out, None


def views(base: torch.Tensor, layouts) -> tuple[torch.Tensor, ...]:
    """base.as_strided(size, stride, offset) for each (size, stride, offset) in `layouts`, offsets relative to a
    contiguous `base`, the views not overlapping."""
    if not base.is_contiguous():
        raise ValueError("stacked.views needs a contiguous base tensor")
    return _Views.apply(base, tuple(layouts))
