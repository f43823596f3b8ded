"""Speech Commands SC10 (App. B.2): raw 16 kHz waveforms and MFCCs, plus an offline espeak-ng stand-in."""
from __future__ import annotations

import io
import random
import wave
from pathlib import Path

import numpy as np
import torch
from .._progress import progress
from . import espeak
from .mfcc import mfcc
from .storage import MissingDatasetError, safe_extract
from .tensors import TensorExamples, seeded_split, standardize

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16000
SC_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
ESPEAK_TRAIN_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")  # "en": British
ESPEAK_TEST_VOICES = ("en-029", "en-us-nyc")      # held out: the test set has unseen voices
ESPEAK_VARIANTS = ("", "+m3", "+f2", "+f4")


def read_wav(data: bytes | str | Path) -> tuple[torch.Tensor, int]:
    """16-bit PCM WAV -> (float waveform in [-1, 1), sample rate), first channel only."""
    with wave.open(io.BytesIO(data) if isinstance(data, bytes) else str(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"expected 16-bit PCM audio, got {8 * w.getsampwidth()}-bit")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return torch.from_numpy(frames[:, 0].astype(np.float32) / 32768.0), w.getframerate()


def resample(x: torch.Tensor, source_rate: int, target_rate: int) -> torch.Tensor:
    """Band-limited resampling of a 1-D signal by truncating/zero-padding its spectrum."""
    n_out = int(round(len(x) * target_rate / source_rate))
    spectrum = torch.fft.rfft(x.double())
    keep = min(len(spectrum), n_out // 2 + 1)
    return (torch.fft.irfft(spectrum[:keep], n=n_out) * (n_out / len(x))).float()


def _features(train: TensorExamples, test: TensorExamples, representation: str):
    """raw: (N, 1, 16000); mfcc: (N, 20, 101) standardized per coefficient with training statistics."""
    if representation == "raw":
        return TensorExamples(train.inputs[:, None], train.labels), TensorExamples(test.inputs[:, None], test.labels)
    if representation != "mfcc":
        raise ValueError(f"representation must be 'raw' or 'mfcc', got {representation!r}")
    a, b = standardize(mfcc(train.inputs), mfcc(test.inputs), dims=(0, 2))
    return TensorExamples(a, train.labels), TensorExamples(b, test.labels)


def speech_commands(root: Path, representation: str):
    """SC10 of Kidger et al. (2020): the ten words, 1 s clips only (34975), seeded 70/15/15 split (test = 15 %)."""
    folder = root / "SpeechCommands"
    cache = folder / "sc10_waveforms.pt"
    if not cache.is_file():
        if not (folder / "yes").is_dir() and (root / "speech_commands_v0.02.tar.gz").is_file():
            safe_extract(root / "speech_commands_v0.02.tar.gz", folder)
        if not all((folder / w).is_dir() for w in WORDS):
            raise MissingDatasetError("speech_commands", folder,
                                      f"download {SC_URL} into {root} (it is unpacked on first use)")
        clips, labels = [], []
        for label, word in enumerate(WORDS):
            for path in progress(sorted((folder / word).glob("*.wav")), desc=f"reading {word}"):
                audio, _ = read_wav(path)
                if len(audio) == SAMPLE_RATE:
                    clips.append(audio)
                    labels.append(label)
        tmp_cache = cache.with_suffix(".tmp")
        torch.save({"x": torch.stack(clips), "y": torch.tensor(labels)}, tmp_cache)
        tmp_cache.replace(cache)
    stored = torch.load(cache)
    rest, test = seeded_split(len(stored["y"]), 0.15, seed=0)
    train = rest[: int(round(0.7 / 0.85 * len(rest)))]            # the remaining 15 % is Kidger's validation split
    return _features(TensorExamples(stored["x"][train], stored["y"][train]),
                     TensorExamples(stored["x"][test], stored["y"][test]), representation)


def _synthesize(word: str, voice: str, speed: int, pitch: int, offset_fraction: float) -> torch.Tensor:
    """`word` spoken by eSpeak NG, resampled to 16 kHz, trimmed of silence and placed at `offset_fraction` of the
    free space in a 1 s clip."""
    speaker = espeak.engine()
    audio = resample(torch.from_numpy(speaker.say(word, voice, speed, pitch)), speaker.sample_rate, SAMPLE_RATE)
    loud = torch.nonzero(audio.abs() > 1e-3).flatten()
    audio = audio[loud[0]: loud[-1] + 1][:SAMPLE_RATE] if len(loud) else audio[:SAMPLE_RATE]
    clip = torch.zeros(SAMPLE_RATE)
    start = int(offset_fraction * (SAMPLE_RATE - len(audio)))
    clip[start: start + len(audio)] = audio
    return clip


def espeak_speech_commands(root: Path, representation: str, clips_per_word: int = 60, seed: int = 0):
    """Offline stand-in: the ten SC10 words spoken by eSpeak NG (flexlib.data.espeak), 1 s at 16 kHz.

    Each clip draws (voice, variant, speed 110-200 wpm, pitch 20-80, position in the 1 s window) from a
    generator seeded with ``seed``; test clips use voices never seen in training. Cached under ``root``.
    """
    cache = root / "espeak-sc10" / f"clips_{clips_per_word}_seed{seed}.pt"
    if not cache.is_file():
        rng = random.Random(seed)
        clips, labels, is_test = [], [], []
        n_test = max(1, round(clips_per_word * 0.25))
        for label, word in enumerate(progress(WORDS, desc="espeak-ng SC10")):
            for i in range(clips_per_word):
                voices = ESPEAK_TEST_VOICES if i < n_test else ESPEAK_TRAIN_VOICES
                voice = rng.choice(voices) + rng.choice(ESPEAK_VARIANTS)
                clips.append(_synthesize(word, voice, rng.randint(110, 200), rng.randint(20, 80), rng.random()))
                labels.append(label)
                is_test.append(i < n_test)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp_cache = cache.with_suffix(".tmp")
        torch.save({"x": torch.stack(clips), "y": torch.tensor(labels), "test": torch.tensor(is_test)}, tmp_cache)
        tmp_cache.replace(cache)
    stored = torch.load(cache)
    test = stored["test"]
    return _features(TensorExamples(stored["x"][~test], stored["y"][~test]),
                     TensorExamples(stored["x"][test], stored["y"][test]), representation)
