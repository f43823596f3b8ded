"""CIFARResNet-20/32/44 (He et al. 2016, §4.2 CIFAR variant): a 3×3 stem with 16 channels, three stages of
(depth - 2) / 6 basic blocks at 16, 32, 64 channels (stride 2 between stages), global average pooling, linear.
Option-A shortcuts (strided identity, zero-padded channels; no parameters) as the original; option "B" gives
1×1 conv + BN shortcuts. With ConvConfig(type="ckconv", kernel_size=3) or type="flexconv" every convolution is
replaced (Table 6: "CIFARResNet-44 w/ CKConv (k = 3)" and "w/ FlexConv"); strided continuous convolutions are
computed at stride 1 and subsampled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.fused import model_crops, model_kernels
from .conv import ConvConfig, Subsample, build_conv, check_model_fields


def _discrete_3x3() -> ConvConfig:
    return ConvConfig(type="conv", kernel_size=3, bias=False)


@dataclass
class CIFARResNetConfig:
    in_channels: int = 3
    num_classes: int = 10
    depth: int = 44
    widths: tuple[int, int, int] = (16, 32, 64)
    shortcut: str = "A"
    conv: ConvConfig = field(default_factory=_discrete_3x3)

    def __post_init__(self):
        check_model_fields(self, ("in_channels", "num_classes", "depth"), dropout=False, norm=False)
        if not isinstance(self.widths, (tuple, list)) or len(self.widths) != 3 or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in self.widths):
            raise ValueError(f"CIFARResNetConfig: widths must be 3 positive integers (one per stage), got "
                             f"{self.widths!r}")
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"CIFARResNet depth must be 6n + 2 (20, 32, 44, 56, ...), got {self.depth}")
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"CIFARResNet shortcut must be 'A' or 'B', got {self.shortcut!r}")
        self.widths = tuple(self.widths)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, cfg: CIFARResNetConfig):
        super().__init__()
        self.conv1 = build_conv(cfg.conv, in_channels, out_channels, 2, stride=stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = build_conv(cfg.conv, out_channels, out_channels, 2)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride, self.pad = stride, out_channels - in_channels
        self.projection = None
        if (stride != 1 or self.pad) and cfg.shortcut == "B":
            self.projection = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(x)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor, kernels: dict | None = None) -> torch.Tensor:
        """`kernels`: the continuous convolutions' kernels, computed by the model (flexlib.layers.fused)."""
        kernels = kernels or {}
        out = torch.relu(self.bn1(_call(self.conv1, x, kernels)))
        return torch.relu(self.bn2(_call(self.conv2, out, kernels)) + self.shortcut(x))


def _call(conv: nn.Module, x: torch.Tensor, kernels: dict) -> torch.Tensor:
    """`conv(x)`, with the kernel the model computed for it (for a strided one: for the layer inside)."""
    kernel = kernels.get(conv.conv if isinstance(conv, Subsample) else conv)
    return conv(x) if kernel is None else conv(x, kernel=kernel)


class CIFARResNet(nn.Module):
    def __init__(self, cfg: CIFARResNetConfig):
        super().__init__()
        self.config = cfg
        n = (cfg.depth - 2) // 6
        self.stem = build_conv(cfg.conv, cfg.in_channels, cfg.widths[0], 2)
        self.stem_bn = nn.BatchNorm2d(cfg.widths[0])
        blocks, prev = [], cfg.widths[0]
        for stage, width in enumerate(cfg.widths):
            for i in range(n):
                blocks.append(BasicBlock(prev, width, 2 if stage > 0 and i == 0 else 1, cfg))
                prev = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(prev, cfg.num_classes)
        for m in self.modules():  # discrete convs only: kernel networks keep their own init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        nn.init.kaiming_normal_(self.head.weight)

    def conv_input_sizes(self, input_size) -> dict[nn.Module, tuple[int, ...]]:
        """The spatial size of every convolution's input (a strided one's: the layer inside, at stride 1)."""
        def inner(conv):
            return conv.conv if isinstance(conv, Subsample) else conv
        size = tuple(int(n) for n in input_size)
        sizes = {inner(self.stem): size}
        for block in self.blocks:
            sizes[inner(block.conv1)] = size
            size = tuple(-(-n // block.stride) for n in size)
            sizes[inner(block.conv2)] = size
        return sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"CIFARResNet: expected images (B, {cfg.in_channels}, H, W), got shape {tuple(x.shape)}")
        sizes = self.conv_input_sizes(x.shape[2:])
        # the continuous kernels computed together (flexlib.layers.fused), after one host read of their crops: under
        # torch.compile the one graph break, before the rest
        kernels = model_kernels(self, sizes, model_crops(self, sizes, compiled=torch.compiler.is_compiling()))
        out = torch.relu(self.stem_bn(_call(self.stem, x, kernels)))
        for block in self.blocks:
            out = block(out, kernels)
        return self.head(out.mean(dim=(2, 3)))
