"""Speech Commands SC10 (App. B.2): raw 16 kHz waveforms and MFCCs, plus an offline stand-in spoken by eSpeak NG.

Both go through the authors' preprocessing (flexlib.data.kidger): MFCCs as torchaudio's
MFCC(n_mfcc=20, log_mels=True, n_fft=200, n_mels=64), whose default hop of 100 samples gives 161 frames (the
authors' code; App. B.2 says 101), raw clips as (1, 16000); both normalized per time step with training statistics.
"""
from __future__ import annotations

import io
import random
import wave
from pathlib import Path

import numpy as np
import torch

from .._progress import progress
from . import espeak, kidger
from .mfcc import mfcc
from .storage import DatasetFormatError
from .tensors import TensorExamples

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SAMPLE_RATE = 16000
SC10_CLIPS = 34975                                 # the 1 s clips of the ten words in v0.02 (Kidger et al. 2020)
ESPEAK_TRAIN_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd")  # "en": British
ESPEAK_VAL_VOICES = ("en-gb-x-rp",)                # held out for validation
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


def features(clips: torch.Tensor, labels: torch.Tensor, splits, representation: str):
    """(train, validation, test) TensorExamples of (N, 16000) clips: raw (N, 1, 16000) or MFCC (N, 20, 161),
    normalized per time step with the statistics of the training indices `splits[0]`."""
    if representation == "raw":
        x = clips[:, None]
    elif representation == "mfcc":
        x = mfcc(clips)
    else:
        raise ValueError(f"representation must be 'raw' or 'mfcc', got {representation!r}")
    x = kidger.normalise_last_axis(x, splits[0])
    return tuple(TensorExamples(x[torch.as_tensor(i)], labels[torch.as_tensor(i)]) for i in splits)


def _read_clip(path: Path) -> torch.Tensor:
    try:
        audio, rate = read_wav(path)
    except (wave.Error, EOFError, ValueError) as err:
        raise DatasetFormatError(path, "a 16-bit PCM WAV file", f"{type(err).__name__}: {err}") from err
    if rate != SAMPLE_RATE:
        raise DatasetFormatError(path, f"audio at {SAMPLE_RATE} Hz", f"{rate} Hz")
    return audio


def speech_commands(root: Path, representation: str, download: bool = False):
    """SC10 of Kidger et al. (2020) as the authors build it: the 1 s clips of the ten words (34975 in v0.02),
    stratified 70 / 15 / 15 split. Returns (train, validation, test)."""
    from .sources import ensure
    folder = ensure("speech_commands", root, download)
    cache = folder / "sc10_waveforms.pt"
    if not cache.is_file():
        clips, labels = [], []
        for label, word in enumerate(WORDS):
            for path in progress(sorted((folder / word).glob("*.wav")), desc=f"reading {word}"):
                audio = _read_clip(path)
                if len(audio) == SAMPLE_RATE:        # the authors (after Kidger) drop the shorter clips
                    clips.append(audio)
                    labels.append(label)
        if not clips:
            raise DatasetFormatError(folder, "1 s clips of 16000 samples in the ten word folders", "none")
        tmp_cache = cache.with_suffix(".tmp")
        torch.save({"x": torch.stack(clips), "y": torch.tensor(labels)}, tmp_cache)
        tmp_cache.replace(cache)
    stored = torch.load(cache, weights_only=True)
    return features(stored["x"], stored["y"], kidger.split_70_15_15(stored["y"]), representation)


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
    generator seeded with ``seed``; validation and test clips use voices never heard in training (one voice for
    validation, two for test). Cached under ``root``. Returns (train, validation, test)."""
    cache = root / "espeak-sc10" / f"clips_{clips_per_word}_seed{seed}.pt"
    if not cache.is_file():
        rng = random.Random(seed)
        clips, labels, split = [], [], []
        n_held = max(1, round(clips_per_word * 0.15))
        for label, word in enumerate(progress(WORDS, desc="espeak-ng SC10")):
            for i in range(clips_per_word):
                part = 2 if i < n_held else 1 if i < 2 * n_held else 0
                voices = (ESPEAK_TRAIN_VOICES, ESPEAK_VAL_VOICES, ESPEAK_TEST_VOICES)[part]
                voice = rng.choice(voices) + rng.choice(ESPEAK_VARIANTS)
                clips.append(_synthesize(word, voice, rng.randint(110, 200), rng.randint(20, 80), rng.random()))
                labels.append(label)
                split.append(part)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp_cache = cache.with_suffix(".tmp")
        torch.save({"x": torch.stack(clips), "y": torch.tensor(labels), "split": torch.tensor(split)}, tmp_cache)
        tmp_cache.replace(cache)
    stored = torch.load(cache, weights_only=True)
    splits = [torch.nonzero(stored["split"] == part).flatten().numpy() for part in (0, 1, 2)]
    return features(stored["x"], stored["y"], splits, representation)
