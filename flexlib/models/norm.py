"""Normalization layers of the models, by name.

"batch": BatchNorm. "layer": the LayerNorm of the authors' CKCNN sequence models (ckconv/nn/norm.py), a GroupNorm
with one group: per example, the mean and variance over all channels *and* positions, then a scale and shift per
channel; it sees the whole sequence, so the layers around it are causal but the normalization is not (the class is
read at the last step, which sees everything anyway). "channel_layer": LayerNorm over the channels at each position
separately, which keeps a sequence model causal throughout (not used by the paper's rows).
"""
from __future__ import annotations

from torch import nn

NORMS = ("batch", "layer", "channel_layer")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dim at every position of (B, C, *spatial); it mixes no positions."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x):
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def build_norm(name: str, channels: int, data_dim: int) -> nn.Module:
    if name == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[data_dim](channels)
    if name == "layer":
        return nn.GroupNorm(1, channels)
    if name == "channel_layer":
        return ChannelLayerNorm(channels)
    raise ValueError(f"unknown norm {name!r}; available: {', '.join(NORMS)}")
