"""The real datasets' loaders on small files in the exact on-disk formats (tests/formats.py): shapes, labels, the
authors' preprocessing, and a clear error for every kind of broken file."""
import numpy as np
import pytest
import torch
import torchvision

import formats
from flexlib.data import DataConfig, DatasetFormatError, build
from flexlib.data.vision import IMAGENET_STATS


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision checks CIFAR-10 and STL-10 files against the md5 of the real archive's files, which small test
    files cannot match: here only their presence is checked; everything else (paths, pickle/binary layout, labels)
    is the real loader's."""
    import os
    import torchvision.datasets.cifar
    import torchvision.datasets.stl10
    for module in (torchvision.datasets.cifar, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def test_cifar10_pickles_through_torchvision_with_the_authors_normalisation(tmp_path, skip_md5):
    formats.write_cifar10(tmp_path)
    data = build(DataConfig("cifar10", root=str(tmp_path), augment=True))
    assert (len(data.train), len(data.test), data.num_classes) == (40, 12, 10) and "CIFAR10" in data.name
    raw = torchvision.datasets.CIFAR10(str(tmp_path / "cifar10"), train=False)
    x, y = data.test[3]
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in IMAGENET_STATS)
    expected = torch.from_numpy(np.asarray(raw[3][0], dtype=np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(x, (expected - mean) / std)       # ToTensor, then ImageNet statistics (authors)
    assert y == raw[3][1] == 3
    x_train, _ = data.train[0]
    assert x_train.shape == (3, 32, 32)
    small = build(DataConfig("cifar10", root=str(tmp_path), resolution=16))
    assert small.test[0][0].shape == (3, 16, 16)


def test_cifar10_augmentation_pads_with_black_before_normalising(tmp_path, skip_md5):
    """The authors crop with 4 px of zero padding on the image in [0, 1]; normalised, a padded pixel is -mean/std."""
    formats.write_cifar10(tmp_path)
    data = build(DataConfig("cifar10", root=str(tmp_path), augment=True))
    mean, std = (torch.tensor(v) for v in IMAGENET_STATS)
    black = -mean / std
    torch.manual_seed(0)
    padded = 0
    for _ in range(40):
        x, _ = data.train[0]
        border = torch.cat([x[:, 0, :], x[:, -1, :], x[:, :, 0], x[:, :, -1]], dim=1)   # (3, 128)
        padded += int(torch.isclose(border, black[:, None], atol=1e-6).all(dim=0).sum())
    assert padded > 0


def test_mnist_idx_files_and_the_sequence_views(tmp_path):
    formats.write_mnist(tmp_path)
    images = build(DataConfig("mnist", root=str(tmp_path)))
    assert (len(images.train), len(images.test)) == (40, 20) and images.train[0][0].shape == (1, 28, 28)
    for key in ("smnist", "pmnist"):
        seq = build(DataConfig(key, root=str(tmp_path)))
        assert seq.train[0][0].shape == (1, 784) and seq.name.startswith(key)


def test_stl10_binaries(tmp_path, skip_md5):
    formats.write_stl10(tmp_path)
    data = build(DataConfig("stl10", root=str(tmp_path)))
    assert (len(data.train), len(data.test)) == (10, 10) and data.train[0][0].shape == (3, 96, 96)
    assert sorted({data.test[i][1] for i in range(10)}) == list(range(10))      # 1..10 on disk, 0..9 here


def test_imagenet_k_npz_and_the_native_low_resolution_version(tmp_path):
    formats.write_imagenet(tmp_path, 32)
    formats.write_imagenet(tmp_path, 16)
    data = build(DataConfig("imagenet32", root=str(tmp_path), augment=True))
    assert (len(data.train), len(data.test), data.num_classes) == (24, 12, 1000)
    assert data.train[0][0].shape == (3, 32, 32)
    low = build(DataConfig("imagenet32", root=str(tmp_path), resolution=16))
    assert low.test[0][0].shape == (3, 16, 16) and "ImageNet16" in low.name     # the native 16 px files (Table 8)
    with pytest.raises(ValueError, match="8, 16, 32 and 64"):
        build(DataConfig("imagenet32", root=str(tmp_path), resolution=24))


def test_char_trajectories_zip_merged_padded_and_resplit(tmp_path):
    formats.char_trajectories_zip(tmp_path / "CharacterTrajectories.zip")
    data = build(DataConfig("char_trajectories", root=str(tmp_path)))
    assert (len(data.train), len(data.val), len(data.test)) == (140, 30, 30)     # 200 merged, 70 / 15 / 15
    assert data.num_classes == 20 and data.in_channels == 3
    x = data.train.inputs
    assert x.shape[-1] <= 182 and torch.isfinite(x).all()


@pytest.fixture
def test_archive_checksums(monkeypatch):
    """The published SHA-256 of the real Speech Commands archive cannot match a small test archive: the test
    archive's own checksum stands in for it, so the verification still runs (tests/test_downloads.py checks the
    published values are refused on a mismatch)."""
    from dataclasses import replace

    from flexlib.data import sources
    from flexlib.data.storage import sha256

    def use(name, archive):
        monkeypatch.setitem(sources.SOURCES, name, replace(sources.SOURCES[name], sha256=sha256(archive)))
        return archive
    return use


@pytest.mark.parametrize("representation, shape", [("mfcc", (20, 161)), ("raw", (1, 16000))])
def test_speech_commands_tar_gz(tmp_path, representation, shape, test_archive_checksums):
    test_archive_checksums("speech_commands", formats.speech_commands_tar(tmp_path / "speech_commands_v0.02.tar.gz"))
    data = build(DataConfig(f"speech_commands_{representation}", root=str(tmp_path)))
    assert len(data.train) + len(data.val) + len(data.test) == 100         # short clips and other words dropped
    assert data.train[0][0].shape == shape and data.num_classes == 10


def test_broken_dataset_files_name_the_file_and_what_was_expected(tmp_path, skip_md5, test_archive_checksums):
    formats.write_mnist(tmp_path)
    images = tmp_path / "mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])                                 # truncated idx file
    with pytest.raises(DatasetFormatError, match=r"mnist.*torchvision MNIST files"):
        build(DataConfig("mnist", root=str(tmp_path)))
    formats.write_imagenet(tmp_path, 32)
    (tmp_path / "imagenet32" / "val_data.npz").write_bytes(b"not an npz")
    with pytest.raises(DatasetFormatError, match=r"val_data.npz is not a valid dataset file: expected an npz file"):
        build(DataConfig("imagenet32", root=str(tmp_path)))
    import zipfile
    with zipfile.ZipFile(tmp_path / "CharacterTrajectories.zip", "w") as zf:
        zf.writestr("CharacterTrajectories_TRAIN.ts", "garbage\n")
        zf.writestr("CharacterTrajectories_TEST.ts", "")
    with pytest.raises(DatasetFormatError, match=r"CharacterTrajectories_TRAIN.ts is not a valid dataset file: "
                                                 r"expected a UEA/UCR .ts file"):
        build(DataConfig("char_trajectories", root=str(tmp_path)))
    archive = formats.speech_commands_tar(tmp_path / "speech_commands_v0.02.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])      # truncated download
    test_archive_checksums("speech_commands", archive)
    with pytest.raises(DatasetFormatError, match="speech_commands_v0.02.tar.gz is not a valid dataset file.*truncated"):
        build(DataConfig("speech_commands_raw", root=str(tmp_path)))
    assert not (tmp_path / "SpeechCommands").exists()                            # nothing half-extracted stays
    assert not list(tmp_path.glob(".SpeechCommands.partial*"))
