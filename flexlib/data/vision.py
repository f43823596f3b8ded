"""The paper's image datasets (App. B.3) through torchvision, plus ImageNet-k from user files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from .storage import MissingDatasetError

STATS = {  # per-channel mean and std of the training sets
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagenet": ((0.4810, 0.4575, 0.4078), (0.2604, 0.2532, 0.2682)),
}


def image_transform(mean, std, augment: bool = False, native: int = 32, resolution: int | None = None,
                    from_pil: bool = True):
    """ToTensor, normalize, He et al. (2016) augmentation (pad 4, random crop, flip), resize.

    Augmentation happens at the native size and resizing after it, so a 16 px run sees the same crops.
    """
    steps = [transforms.ToTensor()] if from_pil else []
    steps.append(transforms.Normalize(mean, std))
    if augment:
        steps += [transforms.RandomCrop(native, padding=4), transforms.RandomHorizontalFlip()]
    if resolution is not None and resolution != native:
        steps.append(transforms.Resize(resolution, antialias=True))
    return transforms.Compose(steps)


def _torchvision(cls, key: str, root: Path, download: bool, url: str, **kwargs) -> Dataset:
    try:
        return cls(root=str(root / key), download=download, **kwargs)
    except RuntimeError as err:
        if "not found" in str(err).lower() or "corrupted" in str(err).lower():
            raise MissingDatasetError(key, root / key, f"set data.download=true (downloads {url})") from err
        raise


def mnist(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.MNIST, "mnist", root, download, "https://yann.lecun.com/exdb/mnist/",
                        train=train, transform=transform)


def cifar10(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.CIFAR10, "cifar10", root, download,
                        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", train=train, transform=transform)


def stl10(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.STL10, "stl10", root, download,
                        "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                        split="train" if train else "test", transform=transform)


class DownsampledImageNet(Dataset):
    """ImageNet-k (Chrabaszcz et al., 2017) from the official npz batches.

    Expects ``<root>/imagenet{k}/train_data_batch_*.npz`` and ``val_data.npz`` (keys ``data``: N x 3k^2 uint8,
    ``labels``: 1..1000), as downloaded from https://image-net.org/download-images.php ("Downsampled ImageNet").
    """

    def __init__(self, root: Path, k: int, train: bool, transform=None):
        folder = root / f"imagenet{k}"
        files = sorted(folder.glob("train_data_batch_*.npz")) if train else [folder / "val_data.npz"]
        if not files or not all(f.is_file() for f in files):
            raise MissingDatasetError(
                f"imagenet{k}", folder,
                f"log in at https://image-net.org/download-images.php, download 'Downsampled ImageNet {k}x{k}' "
                f"(Imagenet{k}_train_npz, Imagenet{k}_val_npz) and put the .npz files in {folder}")
        parts = [np.load(f) for f in files]
        self.images = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, k, k)
        self.labels = np.concatenate([p["labels"] for p in parts]).astype(np.int64) - 1
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = torch.from_numpy(self.images[index]).float() / 255.0
        return (self.transform(x) if self.transform is not None else x), int(self.labels[index])
