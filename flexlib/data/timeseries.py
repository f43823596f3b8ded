"""Multivariate time series: UEA CharacterTrajectories (App. B.2) and its offline stand-in JapaneseVowels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .storage import MissingDatasetError, safe_extract
from .tensors import TensorExamples

CT_URL = "https://www.timeseriesclassification.com/aeon-toolkit/CharacterTrajectories.zip"


def left_pad(series: list[np.ndarray], length: int | None = None) -> torch.Tensor:
    """Variable-length (C, L_i) series -> (N, C, length), zeros in front.

    Padding in front keeps each series' real last step at the end, where the causal models read out; NaNs
    (UEA's marker for missing values) also become 0, the training mean after standardization.
    """
    series = [_strip_trailing_nan(np.asarray(s, dtype=np.float32)) for s in series]
    length = max(s.shape[-1] for s in series) if length is None else length
    out = torch.zeros(len(series), series[0].shape[0], length)
    for i, s in enumerate(series):
        s = torch.nan_to_num(torch.from_numpy(s))
        out[i, :, length - s.shape[-1]:] = s
    return out


def _strip_trailing_nan(s: np.ndarray) -> np.ndarray:
    """Drop trailing steps that are NaN in every channel (how some UEA files pad unequal lengths)."""
    observed = np.flatnonzero(~np.isnan(s).all(axis=0))
    return s[:, : observed[-1] + 1] if len(observed) else s


def _standardized_examples(train_x, train_y, test_x, test_y) -> tuple[TensorExamples, TensorExamples, int]:
    """Standardize per channel with training statistics over observed steps, left-pad, map labels to 0..K-1."""
    observed = np.concatenate([np.asarray(s, dtype=np.float64) for s in train_x], axis=-1)
    mean = np.nanmean(observed, axis=-1, keepdims=True)
    std = np.nanstd(observed, axis=-1, keepdims=True) + 1e-8
    length = max(_strip_trailing_nan(np.asarray(s, dtype=np.float32)).shape[-1]
                 for s in list(train_x) + list(test_x))
    classes = sorted(set(train_y.tolist()))
    index = {c: i for i, c in enumerate(classes)}

    def build(xs, ys):
        x = left_pad([(np.asarray(s, dtype=np.float64) - mean) / std for s in xs], length)
        return TensorExamples(x, torch.tensor([index[c] for c in ys.tolist()]))
    return build(train_x, train_y), build(test_x, test_y), len(classes)


def character_trajectories(root: Path):
    """CharacterTrajectories from the single-dataset UEA zip (train 1422 / test 1436, 3 channels, 20 classes)."""
    from aeon.datasets import load_from_ts_file
    folder = root / "CharacterTrajectories"
    train_file, test_file = folder / "CharacterTrajectories_TRAIN.ts", folder / "CharacterTrajectories_TEST.ts"
    if not train_file.is_file() and (root / "CharacterTrajectories.zip").is_file():
        safe_extract(root / "CharacterTrajectories.zip", folder)
    if not (train_file.is_file() and test_file.is_file()):
        raise MissingDatasetError("char_trajectories", folder,
                                  f"download {CT_URL} into {root} (it is unpacked on first use)")
    train_x, train_y = load_from_ts_file(str(train_file))
    test_x, test_y = load_from_ts_file(str(test_file))
    return _standardized_examples(list(train_x), train_y, list(test_x), test_y)


def japanese_vowels():
    """Offline stand-in: aeon's JapaneseVowels (12 channels, length <= 29, 9 speakers, 270 train / 370 test)."""
    from aeon.datasets import load_classification
    train_x, train_y = load_classification("JapaneseVowels", split="train")
    test_x, test_y = load_classification("JapaneseVowels", split="test")
    return _standardized_examples(list(train_x), train_y, list(test_x), test_y)
