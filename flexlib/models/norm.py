"""Normalization layers of the models, by name."""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "layer")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dim at every position of (B, C, *spatial) (the CKCNN norm of Romero et al.
    2021); it mixes no positions, so it keeps a sequence model causal."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def build_norm(name: str, channels: int, data_dim: int) -> nn.Module:
    if name == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[data_dim](channels)
    if name == "layer":
        return ChannelLayerNorm(channels)
    raise ValueError(f"unknown norm {name!r}; available: {NORMS}")
