"""FlexNet-L (App. D.1, Fig. 10): a stem FlexConv, L residual FlexBlocks without any pooling, global average
pooling and a linear classifier. With ConvConfig(type="ckconv") it is the paper's CKCNN-16 / CKCNN_MAGNet-16;
with type="conv" or "njet" the "w/ conv. (k = 3)", "(k = 33)" and "w/ N-Jet" rows of Tables 3 and 6.

Naming trap: L counts *blocks* in Table 6 ("FlexNet-7") but *layers* in Tables 3, 4, 9, 10 ("FlexNet-16" =
stem + 7 blocks × 2 convs + the linear = 16 layers, the same network). See flexlib.models.registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers import checks
from ..layers.fused import call, model_crops, model_kernels
from .conv import ConvConfig, build_conv, check_model_fields
from .norm import build_norm


@dataclass
class FlexNetConfig:
    in_channels: int = 3
    num_classes: int = 10
    width: int = 24                                  # c (App. D.1: 22 by default, 24 for CIFAR-10 FlexNet-16)
    width_factors: tuple[float, ...] = (1.0, 1.0, 1.5, 1.5, 1.5, 2.0, 2.0)  # one per block: width int(c·f)
    dropout: float = 0.2
    norm: str = "batch"
    data_dim: int = 2
    conv: ConvConfig = field(default_factory=ConvConfig)

    def __post_init__(self):
        if not isinstance(self.width_factors, (tuple, list)) or not self.width_factors:
            raise ValueError(f"FlexNetConfig: width_factors must be a non-empty list of positive numbers (one per "
                             f"block), got {self.width_factors!r}")
        self.width_factors = tuple(self.width_factors)
        check_model_fields(self, ("in_channels", "num_classes", "width"))
        checks.one_of("FlexNetConfig", "data_dim", self.data_dim, (1, 2, 3))
        if not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < float("inf")
                   for f in self.width_factors):
            raise ValueError(f"FlexNetConfig: width_factors must be positive numbers (one per block), got "
                             f"{list(self.width_factors)}")
        narrow = [f for f in self.width_factors if int(self.width * f) < 1]
        if narrow:
            raise ValueError(f"FlexNetConfig: width {self.width} × width_factors {list(narrow)} gives blocks of 0 "
                             f"channels; every int(width × factor) must be >= 1")

    @property
    def widths(self) -> list[int]:
        return [int(self.width * f) for f in self.width_factors]


class FlexBlock(nn.Module):
    """conv → norm → ReLU → dropout → conv → norm, + shortcut (1×1 conv when widths change), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, cfg: FlexNetConfig):
        super().__init__()
        d = cfg.data_dim
        self.conv1 = build_conv(cfg.conv, in_channels, out_channels, d)
        self.norm1 = build_norm(cfg.norm, out_channels, d)
        self.conv2 = build_conv(cfg.conv, out_channels, out_channels, d)
        self.norm2 = build_norm(cfg.norm, out_channels, d)
        self.dropout = nn.Dropout(cfg.dropout)
        conv1x1 = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d]
        self.shortcut = conv1x1(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, kernels: dict | None = None) -> torch.Tensor:
        """`kernels`: the FlexConvs' kernels for x's size, computed by the model (flexlib.layers.fused)."""
        kernels = kernels or {}
        out = self.dropout(torch.relu(self.norm1(call(self.conv1, x, kernels))))
        return torch.relu(self.norm2(call(self.conv2, out, kernels)) + self.shortcut(x))


class FlexNet(nn.Module):
    """Every layer sees the input's spatial size, so the FlexConvs' kernels are computed together before the
    trunk runs (flexlib.layers.fused: one host read of all crops per forward); `batch_kernels = False` lets each
    layer compute its own (same values)."""

    def __init__(self, cfg: FlexNetConfig):
        super().__init__()
        self.config = cfg
        self.batch_kernels = True
        widths = cfg.widths
        self.stem = build_conv(cfg.conv, cfg.in_channels, cfg.width, cfg.data_dim)
        self.stem_norm = build_norm(cfg.norm, cfg.width, cfg.data_dim)
        self.blocks = nn.Sequential(*(FlexBlock(a, b, cfg) for a, b in zip([cfg.width] + widths[:-1], widths)))
        self.head = nn.Linear(widths[-1], cfg.num_classes)
        nn.init.kaiming_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output (B, C, *spatial) before pooling."""
        cfg = self.config
        if x.dim() != cfg.data_dim + 2 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"FlexNet: expected input (B, {cfg.in_channels}, {', '.join('*' * cfg.data_dim)}), "
                             f"got shape {tuple(x.shape)}")
        kernels = {}
        if self.batch_kernels:   # one host read of all crops: under torch.compile the one graph break, before the rest
            crops = model_crops(self, x.shape[2:], compiled=torch.compiler.is_compiling())
            kernels = model_kernels(self, x.shape[2:], crops)
        h = torch.relu(self.stem_norm(call(self.stem, x, kernels)))
        for block in self.blocks:
            h = block(h, kernels)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(2).mean(-1))
