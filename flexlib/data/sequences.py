"""Images as sequences (App. B.2): sMNIST/sCIFAR10 pixel sequences, pMNIST's permutation, npCIFAR10."""
from __future__ import annotations

from pathlib import Path

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


def shared_noise(channels: int = 96, steps: int = NPCIFAR_LENGTH - 32, seed: int = 0) -> torch.Tensor:
    """The npCIFAR10 noise: one standard-normal (channels, steps) tensor drawn from a generator seeded with `seed`
    and appended to every image, train and test alike, as the authors' code does (one `torch.randn(1, 968, 96)` per
    run)."""
    return torch.randn(steps, channels, generator=torch.Generator().manual_seed(seed)).t().contiguous()


class ImageSequences(Dataset):
    """View an image classification dataset as sequences.

    mode "pixels": sMNIST / sCIFAR10; "permuted": pMNIST (a fixed permutation of the pixel order);
    "noise_padded": npCIFAR10, rows as steps followed by `noise` ((C·W, steps), see `shared_noise`).
    """

    def __init__(self, images: Dataset, mode: str, permutation: torch.Tensor | None = None,
                 noise: torch.Tensor | None = None):
        if mode not in ("pixels", "permuted", "noise_padded"):
            raise ValueError(f"mode must be 'pixels', 'permuted' or 'noise_padded', got {mode!r}")
        if mode == "permuted" and permutation is None:
            raise ValueError("mode 'permuted' needs a permutation")
        if mode == "noise_padded" and noise is None:
            raise ValueError("mode 'noise_padded' needs the noise steps (see shared_noise)")
        self.images, self.mode, self.permutation, self.noise = images, mode, permutation, noise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image, label = self.images[index]
        if self.mode == "pixels":
            return pixels_as_sequence(image), label
        if self.mode == "permuted":
            return pixels_as_sequence(image)[:, self.permutation], label
        return torch.cat([rows_as_steps(image), self.noise.to(image.dtype)], dim=1), label
