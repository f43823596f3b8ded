"""The time-series preprocessing of Kidger et al. (2020) as the FlexConv authors' code applies it to Speech Commands
and CharacterTrajectories (rjbruin/flexconv `datasets/speech_commands.py`, `char_trajectories.py`, adapted from
NeuralCDE). It produced the paper's Table 2, so flexlib reproduces it, quirks included:

- split: stratified 70 / 15 / 15 % train / validation / test (scikit-learn's `train_test_split`, `random_state` 0,
  then a 50 / 50 split of the rest with `random_state` 1); the reported test accuracy is the one at the epoch of
  best validation accuracy.
- normalization with training statistics, one mean and std per index of the *last* axis, NaN ignored,
  (x - mean) / (std + 1e-5). The authors' tensors are (N, channels, length), so this normalizes per time step
  over all channels (Kidger's original tensors were (N, length, channels): per channel).
- CharacterTrajectories: the UEA train and test sets merged (2858 series) and re-split; every series padded at its
  end with its last value to the longest length (182 steps); labels numbered in order of first appearance.
"""
from __future__ import annotations

import numpy as np
import torch


def split_70_15_15(labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the stratified train / validation / test split."""
    from sklearn.model_selection import train_test_split
    y = np.asarray(labels)
    index = np.arange(len(y))
    train, rest, _, rest_y = train_test_split(index, y, train_size=0.7, random_state=0, shuffle=True, stratify=y)
    val, test = train_test_split(rest, train_size=0.5, random_state=1, shuffle=True, stratify=rest_y)
    return train, val, test


def normalise_last_axis(x: torch.Tensor, train: np.ndarray) -> torch.Tensor:
    """(x - mean) / (std + 1e-5) per index of the last axis, statistics over the training examples (NaN ignored)."""
    reference = x[torch.as_tensor(train)]
    out = []
    for column, train_column in zip(x.unbind(dim=-1), reference.unbind(dim=-1)):
        observed = train_column.masked_select(~torch.isnan(train_column))
        out.append((column - observed.mean()) / (observed.std() + 1e-5))
    return torch.stack(out, dim=-1)


def pad_with_last(series: list[np.ndarray], length: int | None = None) -> torch.Tensor:
    """Variable-length (C, L_i) series -> (N, C, length): each channel continued with its last value."""
    series = [torch.as_tensor(np.asarray(s, dtype=np.float32)) for s in series]
    length = max(s.shape[-1] for s in series) if length is None else length
    out = torch.empty(len(series), series[0].shape[0], length)
    for i, s in enumerate(series):
        out[i, :, : s.shape[-1]] = s
        out[i, :, s.shape[-1]:] = s[:, -1:]
    return out


def labels_in_order_of_appearance(labels) -> tuple[torch.Tensor, list]:
    """Map arbitrary class labels to 0..K-1 in the order they first appear."""
    classes = list(dict.fromkeys(np.asarray(labels).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[c] for c in np.asarray(labels).tolist()]), classes
