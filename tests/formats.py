"""Small datasets written in the exact on-disk formats the real ones ship in, for tests of the real loaders.

Each writer puts its files where the real download would leave them under a data root, with random contents
and few examples: CIFAR-10 python pickles, MNIST idx files, STL-10 binaries, downsampled-ImageNet npz batches,
the UEA CharacterTrajectories zip of .ts files and the Speech Commands v0.02 .tar.gz of 16-bit WAV files.
"""
from __future__ import annotations

import io
import pickle
import struct
import tarfile
import wave
import zipfile
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(0)


def _labels(n: int, classes: int, offset: int = 0) -> np.ndarray:
    return (np.arange(n) % classes + offset).astype(np.int64)


def write_cifar10(root: Path, per_batch: int = 8, test: int = 12) -> Path:
    """<root>/cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} (pickle protocol 2)."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        entry = {"batch_label": name, "labels": _labels(n, 10).tolist(),
                 "data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_cases_per_batch": per_batch,
                                                        "num_vis": 3072}, protocol=2))
    return folder


def _idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, dtype 0x08 = ubyte, number of dims), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, train: int = 40, test: int = 20) -> Path:
    """<root>/mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed, as torchvision keeps)."""
    folder = root / "mnist" / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", train), ("t10k", test)):
        _idx(folder / f"{prefix}-images-idx3-ubyte", RNG.integers(0, 256, (n, 28, 28)))
        _idx(folder / f"{prefix}-labels-idx1-ubyte", _labels(n, 10))
    return folder


def write_stl10(root: Path, train: int = 10, test: int = 10) -> Path:
    """<root>/stl10/stl10_binary/{train,test}_{X,y}.bin, unlabeled_X.bin: uint8 images stored column-major per
    channel, labels 1..10."""
    folder = root / "stl10" / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("test", test)):
        (folder / f"{split}_X.bin").write_bytes(RNG.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tobytes())
        (folder / f"{split}_y.bin").write_bytes(_labels(n, 10, offset=1).astype(np.uint8).tobytes())
    (folder / "unlabeled_X.bin").write_bytes(RNG.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return folder


def write_imagenet(root: Path, k: int, train: int = 24, val: int = 12, classes: int = 1000) -> Path:
    """<root>/imagenet{k}/{train_data_batch_1, train_data_batch_2, val_data}.npz: 'data' (N, 3k²) uint8 in
    channel-planar order, 'labels' in 1..1000 (the official downsampled-ImageNet npz layout)."""
    folder = root / f"imagenet{k}"
    folder.mkdir(parents=True, exist_ok=True)
    half = train // 2
    for name, n in (("train_data_batch_1", half), ("train_data_batch_2", train - half), ("val_data", val)):
        np.savez(folder / f"{name}.npz", data=RNG.integers(0, 256, (n, 3 * k * k), dtype=np.uint8),
                 labels=(RNG.integers(0, classes, n) + 1).astype(np.int64))
    return folder


def ts_text(series: list[np.ndarray], labels: list[str], name: str = "CharacterTrajectories") -> str:
    """A UEA .ts file of variable-length multivariate series (C, L_i) and their class labels."""
    classes = " ".join(sorted(set(labels), key=int))
    lines = [f"@problemName {name}", "@timeStamps false", "@missing false", "@univariate false",
             f"@dimensions {series[0].shape[0]}", "@equalLength false", f"@classLabel true {classes}", "@data"]
    for s, label in zip(series, labels):
        lines.append(":".join(",".join(f"{v:.6f}" for v in channel) for channel in s) + f":{label}")
    return "\n".join(lines) + "\n"


def char_trajectories_zip(path: Path, train: int = 100, test: int = 100, classes: int = 20) -> Path:
    """CharacterTrajectories.zip as timeseriesclassification.com serves it: the TRAIN and TEST .ts files."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for split, n in (("TRAIN", train), ("TEST", test)):
            series = [RNG.standard_normal((3, int(RNG.integers(60, 183)))) for _ in range(n)]
            labels = [str(c) for c in _labels(n, classes, offset=1)]
            zf.writestr(f"CharacterTrajectories_{split}.ts", ts_text(series, labels))
    return path


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes())
    return buffer.getvalue()


def speech_commands_tar(path: Path, per_word: int = 10) -> Path:
    """speech_commands_v0.02.tar.gz: one folder per word of 16 kHz 16-bit mono WAV files (plus a short clip in each,
    which the SC10 construction drops, and an unused word folder)."""
    words = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "marvin")
    with tarfile.open(path, "w:gz") as tf:
        for word in words:
            for i in range(per_word + 1):
                n = 16000 if i < per_word else 12000
                data = wav_bytes(0.1 * RNG.standard_normal(n))
                info = tarfile.TarInfo(f"./{word}/{i:08x}_nohash_0.wav")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        readme = b"Speech Commands v0.02 (test copy)\n"
        info = tarfile.TarInfo("./README.md")
        info.size = len(readme)
        tf.addfile(info, io.BytesIO(readme))
    return path
