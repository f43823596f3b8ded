"""In-memory datasets: a tensor of examples, integer labels, an optional per-example transform."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset, Subset


class TensorExamples(Dataset):
    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None):
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs, self.labels, self.transform = inputs.float(), labels.long(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = self.inputs[index]
        return (self.transform(x) if self.transform is not None else x), int(self.labels[index])


def seeded_subset(dataset: Dataset, size: int | None, seed: int = 0) -> Dataset:
    """A fixed random subset of ``size`` examples (the whole dataset when size is None or too large)."""
    if size is None or size >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, order[:size].tolist())


def seeded_split(n: int, test_fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint train/test index tensors from a seeded shuffle of range(n)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = int(round(n * test_fraction))
    return order[n_test:], order[:n_test]


def standardize(train: torch.Tensor, test: torch.Tensor, dims: tuple[int, ...]):
    """Standardize both with the training set's mean and std over ``dims`` (per channel)."""
    mean = train.mean(dim=dims, keepdim=True)
    std = train.std(dim=dims, keepdim=True).clamp_min(1e-8)
    return (train - mean) / std, (test - mean) / std
