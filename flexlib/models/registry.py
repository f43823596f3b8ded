"""Model registry: `create(name, in_channels, num_classes, **overrides)` in the manner of timm.

Names follow the paper. The naming trap: Table 6 counts FlexNet *blocks* ("flexnet-3/5/7"), Tables 3, 4, 9 and
10 count *layers* ("flexnet-16" = stem + 7 blocks × 2 convs + linear). Here "flexnet-7" and "flexnet-16" are the
same network (7 blocks, the official code's FlexNet-7), and "flexnet-3" / "flexnet-5" have 3 / 5 blocks.
Sequence models count blocks too ("flextcn-6" has 6 residual blocks), as in Tables 1 and 2.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any, Callable

from torch import nn

from .conv import ConvConfig
from .flexnet import FlexNet, FlexNetConfig
from .resnet import CIFARResNet, CIFARResNetConfig
from .tcn import TCN, TCNConfig

ModelConfig = FlexNetConfig | TCNConfig | CIFARResNetConfig
MODEL_CLASSES: dict[type, type[nn.Module]] = {FlexNetConfig: FlexNet, TCNConfig: TCN, CIFARResNetConfig: CIFARResNet}

FLEXNET_7 = (1.0, 1.0, 1.5, 1.5, 1.5, 2.0, 2.0)   # official `block_width_factors=[1.0, 2, 1.5, 3, 2.0, 2]`, c = 24
FLEXNET_5 = (1.0, 1.5, 1.5, 2.0, 2.0)             # App. D.1's c_i list; official ImageNet-32 command, c = 22
FLEXNET_3 = (1.0, 1.5, 2.0)                       # our reading: one block per width of D.1 (docs/models.md)


@dataclass(frozen=True)
class Entry:
    config: Callable[[], ModelConfig]
    description: str


def _flexnet(width: int, factors, description: str, **conv) -> Entry:
    return Entry(lambda: FlexNetConfig(width=width, width_factors=factors, conv=ConvConfig(**conv)), description)


def _tcn(blocks: int, description: str, width: int = 30, norm: str = "batch", **conv) -> Entry:
    return Entry(lambda: TCNConfig(width=width, num_blocks=blocks, norm=norm, conv=ConvConfig(**conv)), description)


def _resnet(depth: int, description: str, **conv) -> Entry:
    def config():
        return CIFARResNetConfig(depth=depth, conv=ConvConfig(**conv)) if conv else CIFARResNetConfig(depth=depth)
    return Entry(config, description)


_CKCNN_SEQ = dict(type="ckconv", kernel_net="siren", kernel_weight_norm=True, norm="layer")

REGISTRY: dict[str, Entry] = {
    "flexnet-3": _flexnet(24, FLEXNET_3, "FlexNet with 3 FlexBlocks (Table 6)"),
    "flexnet-5": _flexnet(22, FLEXNET_5, "FlexNet with 5 FlexBlocks (Tables 6-8)"),
    "flexnet-7": _flexnet(24, FLEXNET_7, "FlexNet with 7 FlexBlocks (Table 6) = flexnet-16"),
    "flexnet-16": _flexnet(24, FLEXNET_7, "the paper's FlexNet-16 (Tables 3, 4, 9, 10): 7 FlexBlocks"),
    "flexnet-16-siren": _flexnet(24, FLEXNET_7, "FlexNet_SIREN-16 (Table 3)", kernel_net="siren"),
    "flexnet-16-fourier": _flexnet(24, FLEXNET_7, "FlexNet_Fourier-7 (Table 6)", kernel_net="fourier"),
    "flexnet-16-gabor": _flexnet(24, FLEXNET_7, "FlexNet_Gabor-16: isotropic Gabor MFN, Fathony init (Table 3)",
                                 kernel_net="gabor", kernel_init="fathony"),
    "flexnet-16-gabor-anis": _flexnet(24, FLEXNET_7, "FlexNet_Gabor-16 + anis. Gauss. (Table 3): MAGNet with "
                                      "Fathony init", kernel_net="magnet", kernel_init="fathony"),
    "flexnet-16-gabor-init": _flexnet(24, FLEXNET_7, "FlexNet_Gabor-16 + Gabor init (Table 3): isotropic Gabor "
                                      "MFN with the layerwise init", kernel_net="gabor", kernel_init="layerwise"),
    "flexnet-16-conv3": _flexnet(24, FLEXNET_7, "FlexNet-16 w/ conv. (k = 3) (Table 3)", type="conv",
                                 kernel_size=3),
    "flexnet-16-conv33": _flexnet(24, FLEXNET_7, "FlexNet-16 w/ conv. (k = 33) (Table 3)", type="conv",
                                  kernel_size=33),
    "flexnet-16-njet": _flexnet(38, FLEXNET_7, "FlexNet-16 w/ N-Jet (Table 3): order-4 N-Jets, c = 38",
                                type="njet"),
    "flexnet-5-njet": _flexnet(32, FLEXNET_5, "FlexNet-5 w/ N-Jets (Table 8): order-4 N-Jets, c = 32",
                               type="njet"),
    "ckcnn-16": _flexnet(24, FLEXNET_7, "CKCNN-16 (Table 3): FlexNet-16 with SIREN CKConvs, no mask",
                         type="ckconv", kernel_net="siren"),
    "ckcnn-16-magnet": _flexnet(24, FLEXNET_7, "CKCNN_MAGNet-16 (Table 3): MAGNet CKConvs, no mask",
                                type="ckconv"),
    "flextcn-2": _tcn(2, "FlexTCN-2 (Tables 1, 2)"),
    "flextcn-4": _tcn(4, "FlexTCN-4 (Tables 1, 2)"),
    "flextcn-6": _tcn(6, "FlexTCN-6 (Tables 1, 2)"),
    "flextcn-6-siren": _tcn(6, "FlexTCN_SIREN-6 (Tables 1, 2)", kernel_net="siren"),
    "flextcn-6-fourier": _tcn(6, "FlexTCN_Fourier-6 (Tables 1, 2)", kernel_net="fourier"),
    "flextcn-6-gabor": _tcn(6, "FlexTCN_Gabor-6 (Tables 1, 2)", kernel_net="gabor"),
    "cktcn-2": _tcn(2, "CKTCN_MAGNet-2 (Tables 1, 2): causal MAGNet CKConvs, no mask", type="ckconv"),
    "cktcn-2-fourier": _tcn(2, "CKTCN_Fourier-2 (Tables 1, 2)", type="ckconv", kernel_net="fourier"),
    "cktcn-2-gabor": _tcn(2, "CKTCN_Gabor-2 (Tables 1, 2)", type="ckconv", kernel_net="gabor"),
    "ckcnn-2": _tcn(2, "CKCNN-2 (Romero et al. 2021; Table 1)", **_CKCNN_SEQ),
    "ckcnn-2-big": _tcn(2, "CKCNN-2-Big (Romero et al. 2021; Table 1)", width=100, **_CKCNN_SEQ),
    "cifarresnet-20": _resnet(20, "CIFARResNet-20 (He et al. 2016)"),
    "cifarresnet-32": _resnet(32, "CIFARResNet-32 (He et al. 2016; Table 7)"),
    "cifarresnet-44": _resnet(44, "CIFARResNet-44 (He et al. 2016; Tables 3, 6)"),
    "cifarresnet-44-ckconv": _resnet(44, "CIFARResNet-44 w/ CKConv (k = 3) (Table 6)", type="ckconv",
                                     kernel_size=3),
    "cifarresnet-44-flexconv": _resnet(44, "CIFARResNet-44 w/ FlexConv (Table 6)", type="flexconv"),
}


def available() -> list[str]:
    """The names `create` accepts."""
    return sorted(REGISTRY)


def _conv_keys() -> set[str]:
    return {f.name for f in fields(ConvConfig)}


def _apply_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    model_keys = {f.name for f in fields(cfg)} - {"conv"}
    conv = cfg.conv
    if "conv" in overrides:
        value = overrides.pop("conv")
        if not isinstance(value, (ConvConfig, dict)):
            raise TypeError(f"conv must be a ConvConfig or a mapping of its fields, got {type(value).__name__} "
                            f"{value!r:.40}")
        conv = value if isinstance(value, ConvConfig) else conv_config_from_dict(value)
    if "mask" in overrides:  # mask on/off switches FlexConv <-> CKConv
        conv = replace(conv, type="flexconv" if overrides.pop("mask") else "ckconv")
    conv_over = {k: overrides.pop(k) for k in list(overrides) if k in _conv_keys()}
    model_over = {k: overrides.pop(k) for k in list(overrides) if k in model_keys}
    if overrides:
        valid = sorted(model_keys | _conv_keys() | {"conv", "mask"})
        raise ValueError(f"unknown override(s) {sorted(overrides)} for {type(cfg).__name__}; valid keys: {valid}")
    return replace(cfg, conv=replace(conv, **conv_over), **model_over)


def model_config(name: str, in_channels: int | None = None, num_classes: int | None = None,
                 **overrides) -> ModelConfig:
    """The typed config `create` would build, with the dataset's channels/classes and any overrides."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}")
    cfg = REGISTRY[name].config()
    io = {k: v for k, v in (("in_channels", in_channels), ("num_classes", num_classes)) if v is not None}
    for key, value in io.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    return _apply_overrides(replace(cfg, **io), dict(overrides))


def build(cfg: ModelConfig) -> nn.Module:
    """The model of a config dataclass."""
    if type(cfg) not in MODEL_CLASSES:
        raise TypeError(f"expected one of {[c.__name__ for c in MODEL_CLASSES]}, got {type(cfg).__name__}")
    return MODEL_CLASSES[type(cfg)](cfg)


def create(name: str, in_channels: int | None = None, num_classes: int | None = None, **overrides) -> nn.Module:
    """Build a model by name, e.g. create("flexnet-16", 3, 10) or create("flextcn-6", 1, 10, kernel_net="siren").

    Overrides are fields of the model config (width, width_factors, num_blocks, dropout, norm, depth, ...) or of
    its ConvConfig (type, kernel_net, kernel_hidden, kernel_layers, kernel_init, kernel_size, ...); mask=False
    turns FlexConvs into CKConvs."""
    return build(model_config(name, in_channels, num_classes, **overrides))


def conv_config_from_dict(data: dict[str, Any]) -> ConvConfig:
    unknown = set(data) - _conv_keys()
    if unknown:
        raise ValueError(f"unknown ConvConfig key(s) {sorted(unknown)}; valid keys: {sorted(_conv_keys())}")
    return ConvConfig(**data)


def config_from_dict(cls: type, data: dict[str, Any]) -> ModelConfig:
    """A model config from plain data (e.g. YAML): unknown keys are refused, `conv` may be a nested mapping."""
    if cls not in MODEL_CLASSES:
        raise TypeError(f"expected one of {[c.__name__ for c in MODEL_CLASSES]}, got {cls!r}")
    data = dict(data)
    valid = {f.name for f in fields(cls)}
    unknown = set(data) - valid
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {sorted(unknown)}; valid keys: {sorted(valid)}")
    if isinstance(data.get("conv"), dict):
        data["conv"] = conv_config_from_dict(data["conv"])
    return cls(**data)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, each shared tensor counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
