"""Dataset construction: sequence views on synthetic arrays, stand-ins, storage helpers, clear errors."""
import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from flexlib.data import DataConfig
from flexlib.data import DATASETS, DatasetFormatError, MissingDatasetError, build, data_root, safe_extract, verify_checksum
from flexlib.data.mfcc import dct_matrix, mel_filterbank, mfcc
from flexlib.data.sequences import ImageSequences, generate_permutation, pmnist_permutation, rows_as_steps, shared_noise
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


def test_npcifar10_rows_then_the_runs_shared_noise():
    images = _images(4, 3, 32, 32)
    noise = shared_noise(seed=7)
    view = ImageSequences(images, "noise_padded", noise=noise)
    seq, _ = view[3]
    assert seq.shape == (96, 1000)
    img = images[3][0]
    # step h holds row h of all three channels: channel c, column w at feature c * 32 + w
    assert torch.equal(seq[:, 5], torch.cat([img[c, 5] for c in range(3)]))
    assert torch.equal(seq[:, :32], rows_as_steps(img))
    assert torch.equal(seq[:, 32:], view[2][0][:, 32:])                 # one noise for every example (authors' code)
    assert torch.equal(shared_noise(seed=7), noise)                      # the same for the same run seed
    assert not torch.equal(shared_noise(seed=8), noise)
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1) < 0.05
    data = build(DataConfig("npcifar10", offline=True, train_size=2, test_size=2), seed=3)
    assert torch.equal(data.train[0][0][:, 32:], data.test[1][0][:, 32:])   # train and test share it


def test_offline_sequence_standins_keep_the_task_shape():
    for key, channels, length in [("smnist", 1, 784), ("pmnist", 1, 784), ("npcifar10", 96, 1000)]:
        data = build(DataConfig(key, offline=True, train_size=8, test_size=8))
        x, y = data.train[0]
        assert x.shape == (channels, length) and data.in_channels == channels and 0 <= y < 10
        assert "stand-in for " + key in data.name
    ct = build(DataConfig("char_trajectories", offline=True))
    assert "JapaneseVowels" in ct.name and ct.train[0][0].shape == (12, 29) and ct.num_classes == 9
    assert (len(ct.train), len(ct.val), len(ct.test)) == (448, 96, 96)          # 640 series, 70 / 15 / 15


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
    with pytest.raises(DatasetFormatError, match=r"f is not a valid dataset file: expected the published file \(sha256 0+\), found sha256 ba78"):
        verify_checksum(f, "0" * 64)


def test_mfcc_matches_a_numpy_reference():
    torch.manual_seed(0)
    x = torch.randn(16000)
    out = mfcc(x)
    assert out.shape == (20, 161)            # torchaudio's default hop n_fft // 2 = 100, as the authors' code
    # independent reference: numpy framing with reflect padding, rfft power, filterbank, log, DCT-II by definition
    n_fft, hop = 200, 100
    padded = np.pad(x.numpy().astype(np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([padded[i * hop: i * hop + n_fft] * window for i in range(161)])
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


def test_kidger_padding_split_and_per_step_normalisation():
    from flexlib.data import kidger
    out = kidger.pad_with_last([np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones((2, 4))])
    assert torch.equal(out[0], torch.tensor([[1.0, 2.0, 2.0, 2.0], [3.0, 4.0, 4.0, 4.0]]))   # the last value repeats
    labels = torch.arange(200) % 5
    train, val, test = kidger.split_70_15_15(labels)
    assert (len(train), len(val), len(test)) == (140, 30, 30)
    assert set(train) | set(val) | set(test) == set(range(200)) and not set(train) & set(test)
    assert all((labels[torch.as_tensor(part)] == c).sum() * 5 == len(part) for part in (train, val, test)
               for c in range(5))                                                  # stratified
    from sklearn.model_selection import train_test_split                          # the authors' two calls
    ref_train, rest = train_test_split(np.arange(200), train_size=0.7, random_state=0, stratify=labels.numpy())
    assert sorted(ref_train) == sorted(train)
    x = torch.randn(200, 3, 5) * torch.arange(1.0, 6.0) + 7
    z = kidger.normalise_last_axis(x, train)
    ref = x[torch.as_tensor(train)]
    for t in range(5):                                          # one mean/std per time step, over examples and channels
        torch.testing.assert_close(z[..., t], (x[..., t] - ref[..., t].mean()) / (ref[..., t].std() + 1e-5))
    with_nan = x.clone()
    with_nan[torch.as_tensor(train[:3]), 0, 0] = float("nan")
    assert torch.isfinite(kidger.normalise_last_axis(with_nan, train)[torch.as_tensor(val)]).all()


def test_espeak_speech_commands_standin(tmp_path):
    from flexlib.data.speech import espeak_speech_commands
    raw_train, raw_val, raw_test = espeak_speech_commands(tmp_path, "raw", clips_per_word=7)
    assert raw_train.inputs.shape == (50, 1, 16000) and raw_test.inputs.shape == (10, 1, 16000)
    assert raw_val.inputs.shape == (10, 1, 16000)
    assert torch.equal(torch.bincount(raw_test.labels), torch.ones(10, dtype=torch.long))
    assert raw_train.inputs.std(dim=-1).min() > 0.01                             # every clip holds speech
    mfcc_train, _, _ = espeak_speech_commands(tmp_path, "mfcc", clips_per_word=7)   # from the cache
    assert mfcc_train.inputs.shape == (50, 20, 161)
    per_step_mean = mfcc_train.inputs.mean(dim=(0, 1))                           # normalized per time step
    torch.testing.assert_close(per_step_mean, torch.zeros(161), atol=1e-4, rtol=0)


def test_name_says_how_much_of_a_standin_was_used():
    cut = build(DataConfig("smnist", offline=True, train_size=64, test_size=32))
    assert cut.name.endswith("[used: 64 train / 32 test]") and "stand-in for smnist" in cut.name
    assert "[used:" not in build(DataConfig("char_trajectories", offline=True)).name
