"""What an authors'-format FlexNet state dict is, in words and as flexlib registry names: for the error that
says which configuration a checkpoint looks like (see flexlib.models.authors)."""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .flexnet import FlexNetConfig
from .registry import available, model_config


def _shapes(state: Mapping) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in state.items()}


def conv_signature(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> dict | None:
    """The kind of one authors' convolution: {"type": "flexconv"/"ckconv"/"conv", "data_dim", and
    "kernel_net"/"hidden"/"layers" (continuous kernels) or "kernel_size" (discrete)}; None if unrecognised."""
    out_linear = shapes.get(f"{prefix}.Kernel.output_linear.weight")
    if out_linear is not None:
        d = len(out_linear) - 2
        gamma, mu = shapes.get(f"{prefix}.Kernel.filters.0.gamma"), shapes.get(f"{prefix}.Kernel.filters.0.mu")
        if gamma is not None and mu is not None:
            kernel_net = "magnet" if gamma[-1] == mu[-1] else "gabor"   # isotropic Gabor: one γ per unit
        elif f"{prefix}.Kernel.filters.0.linear.weight" in shapes:
            kernel_net = "fourier"
        else:
            kernel_net = "other"
        layers = sum(1 for k in shapes if re.fullmatch(re.escape(prefix) + r"\.Kernel\.linear\.\d+\.weight", k))
        return {"type": "flexconv" if f"{prefix}.mask_params" in shapes else "ckconv", "data_dim": d,
                "kernel_net": kernel_net, "hidden": out_linear[1], "layers": layers}
    weight = shapes.get(f"{prefix}.weight")
    if weight is not None and len(weight) >= 3:
        return {"type": "conv", "data_dim": len(weight) - 2, "kernel_size": weight[-1]}
    return None


def _width(shapes, prefix: str) -> int | None:
    shape = shapes.get(f"{prefix}.bias") or shapes.get(f"{prefix}.weight")
    return shape[0] if shape else None


def registry_names(stem: int, widths: list[int], conv: dict) -> list[str]:
    """flexlib FlexNet registry names whose modules have this layout (channels and classes aside)."""
    names = []
    for name in available():
        cfg = model_config(name)
        if not isinstance(cfg, FlexNetConfig) or cfg.width != stem or cfg.widths != widths \
                or cfg.data_dim != conv["data_dim"] or cfg.conv.type != conv["type"]:
            continue
        if conv["type"] == "conv" and cfg.conv.kernel_size == conv["kernel_size"] or conv["type"] != "conv" and (
                cfg.conv.kernel_net, cfg.conv.kernel_hidden, cfg.conv.kernel_layers) == (
                conv["kernel_net"], conv["hidden"], conv["layers"]):
            names.append(name)
    return names


def describe_authors_state_dict(state: Mapping) -> str:
    """One line: blocks and widths, convolution and kernel network, channels, classes, matching flexlib names.
    `state` maps keys to tensors or to shapes."""
    shapes = _shapes(state)
    conv = conv_signature(shapes, "cconv1")
    if conv is None or "out_layer.weight" not in shapes:
        first = ", ".join(sorted(shapes)[:6])
        return (f"no authors' FlexNet (Img_ResNet): it lacks a cconv1 convolution and an out_layer "
                f"(first keys: {first})")
    blocks = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))})
    stem = _width(shapes, "cconv1")
    widths = [_width(shapes, f"blocks.{i}.cconv1") for i in blocks]
    if conv["type"] == "conv":
        in_channels, what = shapes["cconv1.weight"][1], f"discrete {conv['kernel_size']}-point convolutions"
    else:
        in_channels = shapes["cconv1.Kernel.output_linear.weight"][0] // stem if stem else "?"
        what = (f"{'FlexConv' if conv['type'] == 'flexconv' else 'CKConv (no mask)'} with {conv['kernel_net']} "
                f"kernels ({conv['hidden']} hidden, {conv['layers']} layers)")
    names = registry_names(stem, widths, conv)
    known = f" = flexlib {', '.join(names)}" if names else "; no flexlib registry model has these widths"
    return (f"a FlexNet with {len(blocks)} blocks (stem width {stem}, block widths {widths}), {what}, "
            f"{conv['data_dim']}-D, {in_channels} input channels, {shapes['out_layer.weight'][0]} classes{known}")
