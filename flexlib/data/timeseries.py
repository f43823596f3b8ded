"""Multivariate time series: UEA CharacterTrajectories (App. B.2) and its offline stand-in JapaneseVowels, both
through the authors' preprocessing (flexlib.data.kidger): merged, padded with the last value, normalized, re-split
70 / 15 / 15."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import kidger
from .storage import DatasetFormatError, MissingDatasetError
from .tensors import TensorExamples

CT_URL = "https://www.timeseriesclassification.com/aeon-toolkit/CharacterTrajectories.zip"
CT_FILES = ("CharacterTrajectories_TRAIN.ts", "CharacterTrajectories_TEST.ts")


def _strip_trailing_nan(s: np.ndarray) -> np.ndarray:
    """Drop trailing steps that are NaN in every channel (how some UEA files pad unequal lengths)."""
    observed = np.flatnonzero(~np.isnan(s).all(axis=0))
    return s[:, : observed[-1] + 1] if len(observed) else s


def kidger_splits(series: list, labels) -> tuple[TensorExamples, TensorExamples, TensorExamples, int]:
    """(train, validation, test, number of classes) of variable-length (C, L_i) series, as the authors build them."""
    x = kidger.pad_with_last([_strip_trailing_nan(np.asarray(s, dtype=np.float64)) for s in series])
    y, classes = kidger.labels_in_order_of_appearance(labels)
    train, val, test = kidger.split_70_15_15(y)
    x = kidger.normalise_last_axis(x, train)
    return (*(TensorExamples(x[i], y[i]) for i in (train, val, test)), len(classes))


def _read_ts(path: Path):
    from aeon.datasets import load_from_ts_file
    try:
        x, y = load_from_ts_file(str(path))
    except Exception as err:   # aeon raises many types (IOError, ValueError, its own TsFileParseException)
        raise DatasetFormatError(path, "a UEA/UCR .ts file (header lines starting with @, then one series per "
                                       "line: channels separated by ':', values by ',', the label last)",
                                 f"{type(err).__name__}: {err}") from err
    if len(x) == 0:
        raise DatasetFormatError(path, "a UEA/UCR .ts file with at least one series", "no series")
    return list(x), np.asarray(y)


def character_trajectories(root: Path, download: bool = False):
    """CharacterTrajectories from the single-dataset UEA zip: 2858 series of 3 channels, 20 classes, merged and
    re-split 70 / 15 / 15 (flexlib.data.kidger). Returns (train, validation, test, 20)."""
    from .sources import ensure
    folder = ensure("char_trajectories", root, download)
    train_x, train_y = _read_ts(folder / CT_FILES[0])
    test_x, test_y = _read_ts(folder / CT_FILES[1])
    return kidger_splits(train_x + test_x, np.concatenate([train_y, test_y]))


def japanese_vowels():
    """Offline stand-in: aeon's JapaneseVowels (12 channels, length <= 29, 9 speakers, 640 series), through the same
    preprocessing as CharacterTrajectories."""
    from aeon.datasets import load_classification
    train_x, train_y = load_classification("JapaneseVowels", split="train")
    test_x, test_y = load_classification("JapaneseVowels", split="test")
    return kidger_splits(list(train_x) + list(test_x), np.concatenate([train_y, test_y]))


__all__ = ["CT_URL", "CT_FILES", "character_trajectories", "japanese_vowels", "kidger_splits", "MissingDatasetError"]
