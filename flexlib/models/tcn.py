"""Sequence classifiers: FlexTCN-L, CKTCN-L and CKCNN (§4.2, Tables 1 and 2).

The TCN of Bai et al. (2018) with its convolutions replaced by causal FlexConvs (FlexTCN), by causal CKConvs
without mask (CKTCN), or by SIREN CKConvs with weight-normalised kernel nets and the authors' LayerNorm (CKCNN,
Romero et al. 2021). L residual blocks of constant width, no stem, no pooling; the class is read from the last time
step.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ..layers.fused import call, model_crops, model_kernels
from .conv import ConvConfig, build_conv, check_model_fields
from .norm import build_norm


@dataclass
class TCNConfig:
    in_channels: int = 1
    num_classes: int = 10
    width: int = 30                   # hidden channels of every block (CKCNN's 30; reproduces Tables 1–2)
    num_blocks: int = 2
    dropout: float = 0.1              # not given for sequences in the paper
    norm: str = "batch"
    conv: ConvConfig = field(default_factory=ConvConfig)
    # μ₀ of the mask of the FlexConv that reads the input (the first block's first); None: as conv.mask_init_mean.
    # §5's prior "first" belongs here: a deeper layer whose mask sits on the far past reads, at the last step,
    # activations of the first steps, which saw only the zero padding, so the information cannot reach the output.
    input_mask_init_mean: str | None = None

    def __post_init__(self):
        check_model_fields(self, ("in_channels", "num_classes", "width", "num_blocks"))


class TCNBlock(nn.Module):
    """conv → norm → ReLU → dropout → conv → norm → ReLU → dropout, + shortcut (1×1 conv if widths change), ReLU
    (Bai et al. 2018; Romero et al. 2021)."""

    def __init__(self, in_channels: int, out_channels: int, cfg: TCNConfig, first_conv: ConvConfig | None = None):
        super().__init__()
        self.conv1 = build_conv(first_conv or cfg.conv, in_channels, out_channels, 1, causal=True)
        self.norm1 = build_norm(cfg.norm, out_channels, 1)
        self.conv2 = build_conv(cfg.conv, out_channels, out_channels, 1, causal=True)
        self.norm2 = build_norm(cfg.norm, out_channels, 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.shortcut = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, kernels: dict | None = None) -> torch.Tensor:
        """`kernels`: the FlexConvs' kernels for x's length, computed by the model (flexlib.layers.fused)."""
        kernels = kernels or {}
        out = self.dropout(torch.relu(self.norm1(call(self.conv1, x, kernels))))
        out = self.dropout(torch.relu(self.norm2(call(self.conv2, out, kernels))))
        return torch.relu(out + self.shortcut(x))


class TCN(nn.Module):
    """Every layer sees the input's length, so the FlexConvs' kernels are computed together before the blocks
    run (flexlib.layers.fused); `batch_kernels = False` lets each layer compute its own (same values)."""

    def __init__(self, cfg: TCNConfig):
        super().__init__()
        self.batch_kernels = True
        if cfg.num_blocks < 1:
            raise ValueError(f"TCNConfig.num_blocks must be ≥ 1, got {cfg.num_blocks}")
        self.config = cfg
        channels = [cfg.in_channels] + [cfg.width] * cfg.num_blocks
        first = replace(cfg.conv, mask_init_mean=cfg.input_mask_init_mean) if cfg.input_mask_init_mean else None
        self.blocks = nn.Sequential(*(TCNBlock(a, b, cfg, first if i == 0 else None)
                                      for i, (a, b) in enumerate(zip(channels[:-1], channels[1:]))))
        self.head = nn.Linear(cfg.width, cfg.num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step features (B, width, T); step t depends on inputs ≤ t only."""
        if x.dim() != 3 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"TCN: expected a sequence (B, {self.config.in_channels}, T), got shape {tuple(x.shape)}")
        kernels = {}
        if self.batch_kernels:   # one host read of all crops: under torch.compile the one graph break, before the rest
            crops = model_crops(self, x.shape[2:], compiled=torch.compiler.is_compiling())
            kernels = model_kernels(self, x.shape[2:], crops)
        for block in self.blocks:
            x = block(x, kernels)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[:, :, -1])
