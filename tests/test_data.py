"""Dataset construction: sequence views on synthetic arrays, stand-ins, storage helpers, clear errors."""
import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from flexlib.engine.config import DataConfig
from flexlib.data import DATASETS, MissingDatasetError, build, data_root, safe_extract, verify_checksum
from flexlib.data.mfcc import dct_matrix, mel_filterbank, mfcc
from flexlib.data.sequences import ImageSequences, generate_permutation, pmnist_permutation, rows_as_steps
from flexlib.data.tensors import TensorExamples


def _images(n, c, h, w):
    return TensorExamples(torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w), torch.arange(n) % 10)


def test_smnist_is_the_raster_order():
    images = _images(3, 1, 28, 28)
    seq, label = ImageSequences(images, "pixels")[2]
    assert seq.shape == (1, 784) and label == 2
    assert torch.equal(seq[0, 28 * 5 + 7], images[2][0][0, 5, 7])


def test_pmnist_permutation_is_fixed_saved_and_a_permutation():
    perm = pmnist_permutation()
    assert torch.equal(perm.sort().values, torch.arange(784))
    assert torch.equal(perm, generate_permutation(784, seed=0))       # the file is what the documented seed gives
    assert not torch.equal(perm, torch.arange(784))
    images = _images(2, 1, 28, 28)
    seq, _ = ImageSequences(images, "permuted", perm)[1]
    assert torch.equal(seq[0], images[1][0].flatten()[perm])


def test_npcifar10_rows_then_seeded_noise():
    images = _images(4, 3, 32, 32)
    view = ImageSequences(images, "noise_padded", noise_seed=7)
    seq, _ = view[3]
    assert seq.shape == (96, 1000)
    img = images[3][0]
    # step h holds row h of all three channels: channel c, column w at feature c * 32 + w
    assert torch.equal(seq[:, 5], torch.cat([img[c, 5] for c in range(3)]))
    assert torch.equal(seq[:, :32], rows_as_steps(img))
    noise = seq[:, 32:]
    assert torch.equal(noise, ImageSequences(images, "noise_padded", noise_seed=7)[3][0][:, 32:])   # same every run
    assert not torch.equal(noise, view[2][0][:, 32:])                                             # differs per example
    assert not torch.equal(noise, ImageSequences(images, "noise_padded", noise_seed=8)[3][0][:, 32:])
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05


def test_offline_sequence_standins_keep_the_task_shape():
    for key, channels, length in [("smnist", 1, 784), ("pmnist", 1, 784), ("npcifar10", 96, 1000)]:
        data = build(DataConfig(key, offline=True, train_size=8, test_size=8))
        x, y = data.train[0]
        assert x.shape == (channels, length) and data.in_channels == channels and 0 <= y < 10
        assert "stand-in for " + key in data.name
    ct = build(DataConfig("char_trajectories", offline=True))
    assert "JapaneseVowels" in ct.name and ct.train[0][0].shape == (12, 29) and ct.num_classes == 9


def test_photo_patches_train_and_test_are_disjoint_images_with_augmentation():
    data = build(DataConfig("cifar10", offline=True, augment=True, train_size=50, test_size=50))
    x, _ = data.train[0]
    assert x.shape == (3, 32, 32) and "stand-in for cifar10" in data.name
    small = build(DataConfig("cifar10", offline=True, resolution=16, train_size=4, test_size=4))
    assert small.test[0][0].shape == (3, 16, 16)


def test_missing_dataset_says_what_where_and_how(tmp_path):
    with pytest.raises(MissingDatasetError, match=r"'cifar10' not found at .*cifar10.*data.download=true"):
        build(DataConfig("cifar10", root=str(tmp_path)))
    with pytest.raises(MissingDatasetError, match=r"imagenet32.*image-net.org"):
        build(DataConfig("imagenet32", root=str(tmp_path)))
    with pytest.raises(MissingDatasetError, match=r"speech_commands.*speech_commands_v0.02.tar.gz"):
        build(DataConfig("speech_commands_raw", root=str(tmp_path)))
    with pytest.raises(MissingDatasetError, match=r"char_trajectories.*CharacterTrajectories.zip"):
        build(DataConfig("char_trajectories", root=str(tmp_path)))
    with pytest.raises(ValueError, match="did you mean 'smnist'"):
        build(DataConfig("smnsit"))


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEXLIB_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("FLEXLIB_DATA")
    assert data_root().parts[-2:] == (".cache", "flexlib")


def test_safe_extract_refuses_path_traversal(tmp_path):
    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        safe_extract(bad_zip, tmp_path / "out")
    bad_tar = tmp_path / "bad.tar"
    with tarfile.open(bad_tar, "w") as tf:
        info = tarfile.TarInfo("/abs/evil.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="outside"):
        safe_extract(bad_tar, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("a/b.txt", "hello")
    assert (safe_extract(good, tmp_path / "ok") / "a" / "b.txt").read_text() == "hello"


def test_checksum(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    verify_checksum(f, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")    # sha256("abc")
    with pytest.raises(ValueError, match="checksum mismatch"):
        verify_checksum(f, "0" * 64)


def test_mfcc_matches_a_numpy_reference():
    torch.manual_seed(0)
    x = torch.randn(16000)
    out = mfcc(x)
    assert out.shape == (20, 101)
    # independent reference: numpy framing with reflect padding, rfft power, filterbank, log, DCT-II by definition
    n_fft, hop = 200, 160
    padded = np.pad(x.numpy().astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop: i * hop + n_fft] * window for i in range(101)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    logmel = np.log(power @ mel_filterbank(101, 64, 16000).double().numpy() + 1e-6)
    n, k = np.arange(64), np.arange(20)
    dct = np.cos(np.pi / 64 * (n[:, None] + 0.5) * k[None]) * np.sqrt(2 / 64)
    dct[:, 0] /= np.sqrt(2)
    np.testing.assert_allclose(out.numpy(), (logmel @ dct).T, rtol=1e-3, atol=1e-3)
    d = dct_matrix(20, 64)
    torch.testing.assert_close(d.T @ d, torch.eye(20), atol=1e-5, rtol=0)          # orthonormal columns


def test_every_registered_dataset_has_an_offline_standin():
    assert {"smnist", "pmnist", "scifar10", "npcifar10", "char_trajectories", "speech_commands_mfcc",
            "speech_commands_raw", "cifar10", "mnist", "stl10", "imagenet32"} <= set(DATASETS)


def test_left_pad_keeps_the_real_last_step_at_the_end():
    from flexlib.data.timeseries import left_pad
    nan_padded = np.array([[1.0, 2.0, np.nan], [3.0, 4.0, np.nan]])           # UEA-style trailing NaN padding
    out = left_pad([nan_padded, np.ones((2, 4))])
    assert out.shape == (2, 2, 4)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.0, 1.0, 2.0], [0.0, 0.0, 3.0, 4.0]]))


def test_espeak_speech_commands_standin(tmp_path):
    from flexlib.data.speech import espeak_speech_commands
    raw_train, raw_test = espeak_speech_commands(tmp_path, "raw", clips_per_word=4)
    assert raw_train.inputs.shape == (30, 1, 16000) and raw_test.inputs.shape == (10, 1, 16000)
    assert torch.equal(torch.bincount(raw_test.labels), torch.ones(10, dtype=torch.long))
    assert raw_train.inputs.abs().amax(dim=-1).min() > 0.01                     # every clip holds speech
    mfcc_train, mfcc_test = espeak_speech_commands(tmp_path, "mfcc", clips_per_word=4)   # from the cache
    assert mfcc_train.inputs.shape == (30, 20, 101)
    torch.testing.assert_close(mfcc_train.inputs.mean(dim=(0, 2)), torch.zeros(20), atol=1e-4, rtol=0)


def test_name_says_how_much_of_a_standin_was_used():
    cut = build(DataConfig("smnist", offline=True, train_size=64, test_size=32))
    assert cut.name.endswith("[used: 64 train / 32 test]") and "stand-in for smnist" in cut.name
    assert "[used:" not in build(DataConfig("char_trajectories", offline=True)).name
