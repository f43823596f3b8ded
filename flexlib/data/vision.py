"""The paper's image datasets (App. B.3) through torchvision, plus ImageNet-k from the official npz files.

Preprocessing follows the authors' code (rjbruin/flexconv `datasets/`), which produced the paper's numbers:
augmentation (He et al. 2016: random horizontal flip, then a random crop with zero padding of 1/8 of the side,
i.e. 4 px on CIFAR-10) acts on the image in [0, 1], then the optional resize (Table 4, Fig. 5), then the
normalization. CIFAR-10 and ImageNet-k are normalized with the ImageNet statistics, as the authors do; MNIST and
STL-10 with their own.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from .storage import DatasetFormatError, MissingDatasetError

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
STATS = {  # per-channel mean and std used for normalization (the authors' values)
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": IMAGENET_STATS,
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagenet": IMAGENET_STATS,
}
URLS = {"mnist": "https://yann.lecun.com/exdb/mnist/ (via torchvision)",
        "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "stl10": "https://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"}


def image_transform(mean, std, augment: bool = False, native: int = 32, resolution: int | None = None,
                    from_pil: bool = True):
    """Flip and pad-crop (augment), resize to `resolution`, then ToTensor (PIL input) and normalize.

    Augmentation happens at the native size and resizing after it, so a 16 px run sees the same crops."""
    steps = []
    if augment:
        steps += [transforms.RandomHorizontalFlip(), transforms.RandomCrop(native, padding=native // 8)]
    if resolution is not None and resolution != native:
        steps.append(transforms.Resize(resolution, interpolation=transforms.InterpolationMode.BILINEAR,
                                       antialias=True))
    if from_pil:
        steps.append(transforms.ToTensor())
    steps.append(transforms.Normalize(mean, std))
    return transforms.Compose(steps)


def _torchvision(cls, key: str, root: Path, download: bool, **kwargs) -> Dataset:
    folder = root / key
    try:
        return cls(root=str(folder), download=download, **kwargs)
    except RuntimeError as err:
        text = str(err).lower()
        if "not found" in text or "corrupted" in text:
            raise MissingDatasetError(key, folder, f"set data.download=true (downloads {URLS[key]})") from err
        raise DatasetFormatError(folder, f"the torchvision {cls.__name__} files", f"{type(err).__name__}: {err}") \
            from err
    except (AssertionError, ValueError, OSError, EOFError, KeyError) as err:   # e.g. a truncated idx/pickle file
        raise DatasetFormatError(folder, f"the torchvision {cls.__name__} files",
                                 f"{type(err).__name__}: {err}" if str(err) else type(err).__name__) from err


def mnist(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.MNIST, "mnist", root, download, train=train, transform=transform)


def cifar10(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.CIFAR10, "cifar10", root, download, train=train, transform=transform)


def stl10(root: Path, train: bool, download: bool, transform) -> Dataset:
    return _torchvision(datasets.STL10, "stl10", root, download, split="train" if train else "test",
                        transform=transform)


class DownsampledImageNet(Dataset):
    """ImageNet-k (Chrabaszcz et al., 2017) from the official npz batches.

    Expects ``<root>/imagenet{k}/train_data_batch_*.npz`` (or one ``train_data.npz``) and ``val_data.npz``
    (keys ``data``: N x 3k² uint8 in channel-planar order, ``labels``: 1..1000), as downloaded from
    https://image-net.org/download-images.php ("Downsampled ImageNet"). The validation set is the test set.
    """

    def __init__(self, root: Path, k: int, train: bool, transform=None):
        folder = root / f"imagenet{k}"
        files = (sorted(folder.glob("train_data_batch_*.npz")) or sorted(folder.glob("train_data.npz"))) if train \
            else [folder / "val_data.npz"]
        if not files or not all(f.is_file() for f in files):
            raise MissingDatasetError(
                f"imagenet{k}", folder,
                f"log in at https://image-net.org/download-images.php, download 'Downsampled ImageNet {k}x{k}' "
                f"(Imagenet{k}_train_npz, Imagenet{k}_val_npz) and put the .npz files in {folder}")
        images, labels = [], []
        for f in files:
            try:
                with np.load(f) as part:
                    images.append(part["data"])
                    labels.append(part["labels"])
            except (OSError, ValueError, KeyError, EOFError) as err:
                raise DatasetFormatError(f, "an npz file with arrays 'data' (N x 3k² uint8) and 'labels' (1..1000)",
                                         f"{type(err).__name__}: {err}") from err
        data = np.concatenate(images)
        if data.ndim != 2 or data.shape[1] != 3 * k * k:
            raise DatasetFormatError(files[0], f"'data' of shape (N, {3 * k * k}) for {k}x{k} images",
                                     f"shape {data.shape}")
        self.images = data.reshape(-1, 3, k, k)
        self.labels = np.concatenate(labels).astype(np.int64) - 1
        if len(self.labels) != len(self.images) or self.labels.min() < 0 or self.labels.max() > 999:
            raise DatasetFormatError(files[0], "one label in 1..1000 per image",
                                     f"{len(self.labels)} labels in {self.labels.min() + 1}..{self.labels.max() + 1}"
                                     f" for {len(self.images)} images")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = torch.from_numpy(self.images[index]).float() / 255.0
        return (self.transform(x) if self.transform is not None else x), int(self.labels[index])
