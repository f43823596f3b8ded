"""Checkpoints of the official FlexConv code (rjbruin/flexconv) in flexlib's FlexNet, and back.

The authors' trainer saves {"model": Img_ResNet.state_dict(), "optimizer": ..., "lr_scheduler": ..., "epoch": ...}.
Their FlexNet (Img_ResNet) has the same modules as ours under other names, and each layer stores the same
numbers in another layout:

    authors' key                                 flexlib key
    cconv1.* / norm1.*                           stem.* / stem_norm.*
    blocks.i.cconv{1,2}.* / blocks.i.norm{1,2}.* blocks.i.conv{1,2}.* / blocks.i.norm{1,2}.*
    blocks.i.shortcut.0.*                        blocks.i.shortcut.* (a 1×1 convolution in both)
    out_layer.weight (classes, C, 1, 1)          head.weight (classes, C)
    <conv>.mask_params (D, 2)                    mask.mean_param = column 0, mask.sigma_param = column 1
    <conv>.Kernel.filters.l.{gamma,mu}           kernel_net.filters.l.{gamma,mu}: (hidden, D), the same numbers
    <conv>.Kernel.filters.l.linear.weight        kernel_net.filters.l.linear.weight: (hidden, D, 1, 1) → (hidden, D)
    <conv>.Kernel.linear.l.* (1×1 convolutions)  kernel_net.linears.l.* (nn.Linear)
    <conv>.Kernel.output_linear.*                kernel_net.output_linear.*
    <conv>.train_length (buffer)                 none: the kernel size follows the input (r px → r + 1 points)
    <conv>.mask_threshold (buffer, 0.1)          the FlexConv attribute crop_threshold
    <conv>.temperature (buffer)                  none: the authors' sigmoid mask only
    none (kernel_sampling_rate_norm, not saved)  the FlexConv's sampling_rate_norm (its extra state), kept

Both evaluate the same functions: the authors' grid is ``meshgrid(linspace(-1, 1, k), ...)`` with channel d the
coordinate along kernel axis d, as our coordinates (N, D); their Gabor layers scale the sine weights by γ·25.6/√L
once at init, so the stored weights are the effective ones in both codes (no rescaling on load); σ may be
stored negative, only σ² and |σ| are used in both. Numerical difference: our mask divides by σ² + ε with ε = 1e-8 by
default (see flexlib.layers.mask), a relative change of ε/σ² in the exponent; `mask_eps=0.0` computes what theirs computes.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..layers.flexconv import FlexConv
from ..layers.kernelnets import MFN
from .flexnet import FlexNet
from .registry import create
from .weights import as_path, check_state_dict, read_tensors

AUTHORS_MODULES = [(r"^stem\.", "cconv1."), (r"^stem_norm\.", "norm1."),
                   (r"^blocks\.(\d+)\.conv([12])\.", r"blocks.\1.cconv\2."),
                   (r"^blocks\.(\d+)\.norm([12])\.", r"blocks.\1.norm\2."),
                   (r"^blocks\.(\d+)\.shortcut\.", r"blocks.\1.shortcut.0."), (r"^head\.", "out_layer.")]
KERNEL_NET_MODULES = {"kernel_net.filters.": "Kernel.filters.", "kernel_net.linears.": "Kernel.linear.",
                      "kernel_net.output_linear.": "Kernel.output_linear."}
# flexlib state with no authors' counterpart, kept as the model has it: the resolution factor (a FlexConv's extra
# state; the authors' kernel_sampling_rate_norm is a plain attribute, set by run_crossres.py, never saved)
OURS_ONLY = ("_extra_state", "sampling_rate_norm")
MASK_BUFFERS = {"temperature": 15.0, "mask_threshold": 0.1}


class AuthorsCheckpointError(ValueError):
    """An authors' checkpoint that cannot be read safely or does not fit the requested model."""


def load_authors_state_dict(path: str | Path, map_location="cpu") -> dict[str, torch.Tensor]:
    """The model state dict inside an authors' checkpoint file, loaded with ``weights_only=True`` (tensors and
    plain containers only; a file that needs any other Python object is refused, never unpickled). Accepts the
    trainer's ``{"model": ...}`` file or a bare state dict; a ``module.`` prefix (DataParallel) is removed. Every
    floating-point value must be finite (flexlib.models.weights.check_finite)."""
    path = as_path(path, "authors' checkpoint")
    obj = read_tensors(path, map_location=map_location, error=AuthorsCheckpointError, what="authors' checkpoint")
    state = obj.get("model", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = sorted(map(str, obj))[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise AuthorsCheckpointError(f"{path} holds no model state dict: expected {{'model': state_dict}} or a "
                                     f"state dict of tensors, found {found}")
    return check_state_dict({str(k).removeprefix("module."): v for k, v in state.items()}, str(path),
                            AuthorsCheckpointError)


def authors_train_length(state: Mapping[str, torch.Tensor]) -> int | None:
    """The kernel size the checkpoint's convolutions were last run with (their `train_length` buffer: r + 1
    for r px, 0 before the first forward pass); None when absent, zero or not the same in every layer."""
    lengths = {int(v.reshape(-1)[0]) for k, v in state.items() if k.endswith(".train_length") and v.numel()}
    return lengths.pop() if len(lengths) == 1 and 0 not in lengths else None


# -- the key plan --------------------------------------------------------------------------------------------------
def _authors_module_key(key: str) -> str:
    for pattern, repl in AUTHORS_MODULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    raise AuthorsCheckpointError(f"flexlib key {key!r} has no counterpart in the authors' Img_ResNet")


def _plan(model: nn.Module) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[int, ...]], dict[str, float]]:
    """For every flexlib state key: (authors' key, how the value moves: "same", "linear" (trailing 1×1 dims),
    "mean"/"sigma" (a column of mask_params), "ours" (no counterpart; keep flexlib's)); the authors' layout
    {key: shape}; and the authors' own buffers with their default values."""
    if not isinstance(model, FlexNet):
        raise AuthorsCheckpointError(f"authors' checkpoints load into the FlexNet family (their Img_ResNet); "
                                     f"got a {type(model).__name__}")
    d = model.config.data_dim
    convs = {name: m for name, m in model.named_modules() if isinstance(m, FlexConv)}
    plan, layout, extras = {}, {}, {}
    for key, value in model.state_dict().items():
        owner = max((n for n in convs if key.startswith(n + ".")), key=len, default=None)
        if key.endswith(OURS_ONLY):
            plan[key] = ("", "ours")
            continue
        if owner is None:
            kind = "linear" if key == "head.weight" else "same"
            plan[key] = (_authors_module_key(key), kind)
        else:
            plan[key] = _conv_entry(convs[owner], _authors_module_key(owner + "."), key[len(owner) + 1:])
        a_key, kind = plan[key]
        layout[a_key] = (d, 2) if kind in ("mean", "sigma") else \
            tuple(value.shape) + (1,) * d if kind == "linear" else tuple(value.shape)
    for name, conv in convs.items():
        prefix = _authors_module_key(name + ".")
        extras[prefix + "train_length"] = 0
        if conv.mask is not None:
            extras.update({prefix + k: (conv.crop_threshold or v) if k == "mask_threshold" else v
                           for k, v in MASK_BUFFERS.items()})
    layout.update({k: (1,) for k in extras})
    return plan, layout, extras


def _conv_entry(conv: FlexConv, prefix: str, rel: str) -> tuple[str, str]:
    if not isinstance(conv.kernel_net, MFN):
        raise AuthorsCheckpointError(f"only MFN kernel networks (MAGNet, Gabor, Fourier) have a known authors' "
                                     f"layout; this model uses {type(conv.kernel_net).__name__}")
    if conv.mask is not None and conv.mask.theta is not None:
        raise AuthorsCheckpointError("a rotated mask (theta) has no place in the authors' mask_params")
    if rel == "bias":
        return prefix + "bias", "same"
    if rel in ("mask.mean_param", "mask.sigma_param"):
        return prefix + "mask_params", rel[5:-6]
    for ours, theirs in KERNEL_NET_MODULES.items():
        if rel.startswith(ours):
            return prefix + theirs + rel[len(ours):], "linear" if rel.endswith("weight") else "same"
    raise AuthorsCheckpointError(f"flexlib FlexConv state {rel!r} has no counterpart in the authors' FlexConv")


# -- flexlib → authors ---------------------------------------------------------------------------------------------
@torch.no_grad()
def to_authors_state_dict(model: nn.Module, train_length: int = 0) -> dict[str, torch.Tensor]:
    """`model`'s weights in the authors' Img_ResNet layout (what their `load_state_dict` accepts).
    `train_length`: the kernel size to record (their code sets it on the first forward pass; 0 = not yet)."""
    plan, layout, extras = _plan(model)
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, (a_key, kind) in plan.items():
        if kind == "linear":
            out[a_key] = state[key].reshape(layout[a_key]).clone()
        elif kind in ("mean", "sigma"):
            if a_key not in out:
                out[a_key] = torch.empty(layout[a_key], dtype=state[key].dtype)
            out[a_key][:, 0 if kind == "mean" else 1] = state[key]
        elif kind == "same":
            out[a_key] = state[key].clone()
    for a_key, value in extras.items():
        out[a_key] = torch.tensor([train_length if a_key.endswith("train_length") else value],
                                  dtype=torch.int32 if a_key.endswith("train_length") else torch.float32)
    return out


# -- authors → flexlib ---------------------------------------------------------------------------------------------
def from_authors_checkpoint(checkpoint: str | Path | Mapping[str, torch.Tensor], name: str, in_channels: int,
                            num_classes: int, source_res=None, target_res=None, map_location="cpu",
                            **overrides) -> nn.Module:
    """flexlib model `name` (e.g. "flexnet-16" = the authors' FlexNet-7, "flexnet-5") holding the weights of an
    authors' checkpoint file (or state dict), in eval mode.

    Every key of the checkpoint must map onto the model and every model weight must come from the checkpoint,
    with equal shapes; otherwise AuthorsCheckpointError lists the missing, unexpected and mis-shaped keys and
    says which configuration the checkpoint looks like. Each FlexConv's `crop_threshold` is read from the
    checkpoint's `mask_threshold`. With `source_res` and `target_res` (px) the model is retargeted as the
    authors' run_crossres.py does (eq. 9: kernels × (source/target)^D, sampled on target + 1 points): a
    cross-resolution source checkpoint evaluated at the target, or a fine-tuned "final" one (trained at the
    source, fine-tuned at the target with that factor). Further keyword arguments go to `flexlib.models.create`,
    e.g. ``mask_eps=0.0`` for the authors' arithmetic of eq. 1 or ``dropout=0.0``."""
    if isinstance(checkpoint, Mapping):
        state = check_state_dict(checkpoint, "the authors' state dict", AuthorsCheckpointError)
    else:
        state = load_authors_state_dict(as_path(checkpoint, "checkpoint"), map_location)
    model = create(name, in_channels, num_classes, **overrides)
    plan, layout, extras = _plan(model)
    _check_layout(state, layout, name)
    ours = model.state_dict()
    with torch.no_grad():
        for key, (a_key, kind) in plan.items():
            if kind == "ours":
                continue
            value = state[a_key]
            if kind in ("mean", "sigma"):
                value = value[:, 0 if kind == "mean" else 1]
            ours[key] = value.reshape(ours[key].shape).to(ours[key].dtype)
    model.load_state_dict(ours, strict=True)
    for conv_name, conv in model.named_modules():
        if isinstance(conv, FlexConv) and conv.mask is not None:
            threshold = float(state[_authors_module_key(conv_name + ".") + "mask_threshold"].reshape(-1)[0])
            if not 0.0 < threshold < 1.0:
                raise AuthorsCheckpointError(f"{conv_name}: mask_threshold {threshold} must lie in (0, 1)")
            conv.crop_threshold = threshold
    if (source_res is None) != (target_res is None):
        raise ValueError("give both source_res and target_res (px) to retarget, or neither")
    if source_res is not None and source_res != target_res:
        from ..layers.resolution import retarget
        retarget(model, source_res, target_res)
    return model.eval()


def _check_layout(state: Mapping[str, torch.Tensor], layout: dict[str, tuple[int, ...]], name: str) -> None:
    missing = [k for k in layout if k not in state]
    unexpected = [k for k in state if k not in layout]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)}, {name} {layout[k]}"
              for k in layout if k in state and tuple(state[k].shape) != layout[k]]
    if not (missing or unexpected or shapes):
        return
    from .authors_layout import describe_authors_state_dict

    def listing(title, items):
        more = f" ... and {len(items) - 10} more" if len(items) > 10 else ""
        return f"\n  {len(items)} {title}: " + "; ".join(items[:10]) + more if items else ""
    raise AuthorsCheckpointError(
        f"the checkpoint does not fit flexlib model {name!r}:"
        + listing("missing key(s)", missing) + listing("unexpected key(s)", unexpected)
        + listing("shape mismatch(es)", shapes)
        + f"\n  the checkpoint looks like {describe_authors_state_dict(state)}"
        + f"\n  {name!r} is {describe_authors_state_dict(layout)}")
