"""What the data of an experiment is: the `data:` section of a params file (see flexlib.engine.config)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataConfig:
    dataset: str                      # a key of flexlib.data.DATASETS
    offline: bool = False             # use the offline stand-in (quick profiles) instead of the paper's data
    root: str | None = None           # data root; else $FLEXLIB_DATA; else ~/.cache/flexlib
    download: bool = False            # let torchvision download the real dataset
    augment: bool = False             # He et al. (2016) CIFAR augmentation: pad 4, random crop, flip
    resolution: int | None = None     # resize images to this side length (Table 4, Fig. 5)
    train_size: int | None = None     # keep a seeded random subset of this many training examples
    test_size: int | None = None
    num_workers: int = 0
