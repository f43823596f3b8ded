"""Mel-frequency cepstral coefficients in plain torch (no torchaudio).

Same definition as ``torchaudio.transforms.MFCC(log_mels=True)``, which Kidger et al. (2020) use for Speech
Commands: |STFT|^2 with a periodic Hann window (centered, reflect padding), an HTK mel filterbank, log(. + 1e-6),
and an orthonormal DCT-II keeping the first ``n_mfcc`` coefficients.
"""
from __future__ import annotations

import math

import torch


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_freqs, n_mels) triangular filters, equally spaced on the HTK mel scale, peak 1, no area norm."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    mels = torch.linspace(hz_to_mel(torch.tensor(f_min, dtype=torch.float64)),
                          hz_to_mel(torch.tensor(f_max, dtype=torch.float64)), n_mels + 2, dtype=torch.float64)
    edges = mel_to_hz(mels)
    widths = edges[1:] - edges[:-1]
    offsets = edges[None, :] - freqs[:, None]                     # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0).float()


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """(n_mels, n_mfcc) orthonormal DCT-II: X_k = sum_n x_n cos(pi/N (n + 1/2) k), scaled orthonormally."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)
    basis = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k[None, :])
    basis[:, 0] *= 1.0 / math.sqrt(2.0)
    return (basis * math.sqrt(2.0 / n_mels)).float()


def mfcc(waveform: torch.Tensor, sample_rate: int = 16000, n_mfcc: int = 20, n_fft: int = 200,
         hop_length: int = 100, n_mels: int = 64) -> torch.Tensor:
    """(..., T) waveform -> (..., n_mfcc, frames) with frames = T // hop_length + 1.

    Kidger et al. and the FlexConv authors' code use n_fft=200, n_mels=64 and torchaudio's default hop
    n_fft // 2 = 100, giving 161 frames per second: the default here. App. B.2 of the paper reports 101 frames
    (a hop of 160); the code made the paper's numbers.
    """
    shape = waveform.shape
    spec = torch.stft(waveform.reshape(-1, shape[-1]), n_fft=n_fft, hop_length=hop_length,
                      window=torch.hann_window(n_fft, device=waveform.device), center=True,
                      pad_mode="reflect", return_complex=True).abs() ** 2      # (B, n_fft//2+1, frames)
    fbank = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate).to(waveform.device)
    mel = torch.log(torch.einsum("bft,fm->bmt", spec, fbank) + 1e-6)
    coeffs = torch.einsum("bmt,mk->bkt", mel, dct_matrix(n_mfcc, n_mels).to(waveform.device))
    return coeffs.reshape(*shape[:-1], n_mfcc, coeffs.shape[-1])
