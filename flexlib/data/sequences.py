"""Images as sequences (App. B.2): sMNIST/sCIFAR10 pixel sequences, pMNIST's permutation, npCIFAR10."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

PERMUTATION_SEED = 0
PERMUTATION_FILE = Path(__file__).resolve().parent.parent / "assets" / "pmnist_permutation.txt"
NPCIFAR_LENGTH = 1000


def generate_permutation(length: int = 784, seed: int = PERMUTATION_SEED) -> torch.Tensor:
    """``torch.randperm(length)`` from a ``torch.Generator`` seeded with ``seed``; how the saved file was made."""
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed))


def pmnist_permutation() -> torch.Tensor:
    """The fixed pMNIST pixel order, read from the file shipped with flexlib (stable across torch versions)."""
    return torch.tensor([int(v) for v in PERMUTATION_FILE.read_text().split()], dtype=torch.long)


def pixels_as_sequence(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (C, H*W): pixels in raster order, one step per pixel (sMNIST, sCIFAR10)."""
    return image.reshape(image.shape[0], -1)


def rows_as_steps(image: torch.Tensor) -> torch.Tensor:
    """(C, H, W) -> (C*W, H): one step per image row, its C*W values as channels (npCIFAR10: 96 x 32)."""
    c, h, w = image.shape
    return image.permute(0, 2, 1).reshape(c * w, h)


def noise_pad(sequence: torch.Tensor, length: int, rng: np.random.Generator) -> torch.Tensor:
    """Append standard-normal noise steps to a (C, L) sequence up to ``length`` steps (Chang et al., 2019)."""
    c, steps = sequence.shape
    noise = torch.from_numpy(rng.standard_normal((c, length - steps))).to(sequence.dtype)
    return torch.cat([sequence, noise], dim=1)


class ImageSequences(Dataset):
    """View an image classification dataset as sequences.

    mode "pixels": sMNIST / sCIFAR10; "permuted": pMNIST (a fixed permutation of the pixel order);
    "noise_padded": npCIFAR10, rows as steps followed by noise up to ``length`` steps. The noise of example i
    comes from a numpy generator seeded with (noise_seed, i), so every epoch and every run sees the same noise.
    """

    def __init__(self, images: Dataset, mode: str, permutation: torch.Tensor | None = None,
                 length: int = NPCIFAR_LENGTH, noise_seed: int = 0):
        if mode not in ("pixels", "permuted", "noise_padded"):
            raise ValueError(f"mode must be 'pixels', 'permuted' or 'noise_padded', got {mode!r}")
        if mode == "permuted" and permutation is None:
            raise ValueError("mode 'permuted' needs a permutation")
        self.images, self.mode, self.permutation = images, mode, permutation
        self.length, self.noise_seed = length, noise_seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        if self.mode == "pixels":
            return pixels_as_sequence(image), label
        if self.mode == "permuted":
            return pixels_as_sequence(image)[:, self.permutation], label
        # numpy's SeedSequence mixes both numbers fully (torch's CPU generator keeps only 32 bits of a seed)
        rng = np.random.default_rng([self.noise_seed, index])
        return noise_pad(rows_as_steps(image), self.length, rng), label
