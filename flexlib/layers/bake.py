"""Bake a trained model for deployment: every FlexConv becomes a plain nn.Conv1d/2d/3d holding its current
cropped kernel, so inference pays nothing for kernel generation and the model exports with torch.onnx.export.

A FlexConv's kernel follows its input size (App. A.2), so a baked model is valid for the input size it was baked
at: `bake` runs one forward pass on `example_input` to learn the size each FlexConv sees, and each baked layer
refuses inputs of another size with a clear error.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .flexconv import FlexConv


class _Baked:
    """A plain convolution holding a FlexConv's kernel for one input size. The kernel of a FlexConv follows the
    size of its input (App. A.2), so any other size is refused rather than run with the wrong kernel."""

    baked_input_size: tuple[int, ...] = ()
    causal_padding: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[2:])
        if not torch.jit.is_tracing() and size != self.baked_input_size:  # an exported graph has static sizes
            raise ValueError(f"{type(self).__name__}: baked for inputs of spatial size {self.baked_input_size}, got "
                             f"{size}; a FlexConv's kernel follows its input size, so bake the model again with an "
                             f"example input of this size (flexlib.bake(model, example_input))")
        if self.causal_padding:
            x = F.pad(x, (self.causal_padding, 0))
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, baked_input_size={self.baked_input_size}" + (
            f", causal_padding={self.causal_padding}" if self.causal_padding else "")


class BakedConv1d(_Baked, nn.Conv1d):
    pass


class BakedConv2d(_Baked, nn.Conv2d):
    pass


class BakedConv3d(_Baked, nn.Conv3d):
    pass


_CONV_CLASSES = {1: BakedConv1d, 2: BakedConv2d, 3: BakedConv3d}


def baked_conv(conv: FlexConv, input_size) -> nn.Module:
    """The plain convolution that computes `conv` on inputs of spatial size `input_size` (and refuses others):
    an nn.ConvNd subclass with the cropped kernel (resolution factor included) and 'same' padding, or left
    padding if causal."""
    input_size = tuple(int(n) for n in input_size)
    with torch.no_grad():
        kernel = conv.kernel_for(input_size).detach().clone()
    k = tuple(kernel.shape[2:])
    padding = 0 if conv.causal else tuple(kd // 2 for kd in k)
    plain = _CONV_CLASSES[conv.data_dim](conv.in_channels, conv.out_channels, k, padding=padding,
                                         bias=conv.bias is not None, device=kernel.device, dtype=kernel.dtype)
    plain.baked_input_size = input_size
    plain.causal_padding = k[0] - 1 if conv.causal else 0
    with torch.no_grad():
        plain.weight.copy_(kernel)
        if conv.bias is not None:
            plain.bias.copy_(conv.bias)
    return plain


def bake(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """A copy of `model` in which every FlexConv (and CKConv) is replaced by the plain convolution it computes on
    the input sizes seen in a forward pass of `example_input` (e.g. one batch of the deployment resolution).

    The copy keeps the model's train/eval mode; `model` itself is not changed. A FlexConv that the forward pass
    does not reach, or that sees two different input sizes, is an error: its kernel would be ambiguous."""
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"bake: example_input must be a torch.Tensor batch, got {type(example_input).__name__}")
    baked = copy.deepcopy(model)
    convs = {name: m for name, m in baked.named_modules() if isinstance(m, FlexConv)}
    if not convs:
        raise ValueError("bake: the model has no FlexConv or CKConv layer to bake")
    sizes: dict[str, set] = {name: set() for name in convs}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: sizes[name].add(tuple(args[0].shape[2:])))
             for name, m in convs.items()]
    training = baked.training
    try:
        baked.eval()
        with torch.no_grad():
            baked(example_input)
    finally:
        for h in hooks:
            h.remove()
        baked.train(training)
    for name, conv in convs.items():
        if len(sizes[name]) != 1:
            seen = sorted(sizes[name]) or "none"
            raise ValueError(f"bake: FlexConv {name!r} saw input sizes {seen} in the forward pass of example_input;"
                             " it needs exactly one to fix its kernel")
        parent_name, _, attr = name.rpartition(".")
        parent = baked.get_submodule(parent_name) if parent_name else baked
        plain = baked_conv(conv, next(iter(sizes[name])))
        plain.train(training)
        if not name:                                  # `model` is itself a FlexConv
            return plain
        if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
            parent[int(attr)] = plain
        else:
            setattr(parent, attr, plain)
    return baked
