"""The official code's weight decay (``optim.weight_decay_form: kernel_norm``).

rjbruin/flexconv adds ``LnLoss`` (ckconv/nn/regularizers.py) to the loss in trainer.py when weight_decay > 0, and
its Adam has no weight_decay of its own:

    L_wd = weight_decay · Σ_{CKConv/FlexConv layers} (‖ψ‖₂ + ‖b‖₂)

ψ is the generated kernel the layer used in the forward pass (masked, cropped, resolution factor included), b its
bias, and ‖·‖₂ the unsquared L2 norm over all entries. No other layer (N-Jet, discrete convolutions, norms, the
classifier) is decayed.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..flexconv import FlexConv


def kernel_norm_penalty(kernels: Iterable[torch.Tensor], biases: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """Σ_l ‖ψ_l‖₂ + Σ_l ‖b_l‖₂: unsquared L2 norms over all entries (the gradient at a zero tensor is 0), in float32
    or wider."""
    terms = [torch.linalg.vector_norm(t, dtype=torch.promote_types(t.dtype, torch.float32))
             for t in [*kernels, *biases] if t is not None]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def used_kernels(model: nn.Module) -> list[tuple[FlexConv, torch.Tensor | None]]:
    """Every CKConv/FlexConv of ``model`` (CKConv is a FlexConv without mask) with the kernel of its latest forward
    pass: the layer's ``last_kernel`` when it keeps one, else generated again by ``kernel_for(last_kernel_size)``
    (the same values and gradient, for one more kernel-network evaluation); None for a layer that has not run."""
    out = []
    for conv in (m for m in model.modules() if isinstance(m, FlexConv)):
        kernel = getattr(conv, "last_kernel", None)
        if kernel is None and conv.last_kernel_size is not None:
            kernel = conv.kernel_for(conv.last_kernel_size)
        out.append((conv, kernel))
    return out


def model_kernel_norm_penalty(model: nn.Module) -> torch.Tensor:
    """Σ over the CKConv/FlexConv layers of ``model`` of ‖ψ‖₂ + ‖b‖₂, to be called right after a forward pass."""
    pairs = used_kernels(model)
    return kernel_norm_penalty([k for _, k in pairs], [conv.bias for conv, _ in pairs])
