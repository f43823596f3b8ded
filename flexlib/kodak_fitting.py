"""Table 5 for the notebook: fit each row's ≈7k-parameter network to each Kodak image with the engine's
`flexlib.fit.fit_image`, and also keep the PSNR curve and the reconstruction (which `fit_image` does not return).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .data.kodak import kodak_image
from .fit import coordinate_grid, fit_image, psnr, shrink
from .models.kodak import KODAK_PAPER_PARAMS, kodak_kernel_net_config

# Table 5: average PSNR (dB) over the 24 Kodak images at 768×512 after 20 000 iterations.
KODAK_PAPER_PSNR = {"siren": 25.665, "fourier": 23.276, "gabor": 25.361, "gabor-improved-init": 25.606,
                    "magnet-fathony-init": 25.791, "magnet": 25.893}
ROW_LABELS = {"siren": "SIREN", "fourier": "Fourier MFN", "gabor": "Gabor MFN",
              "gabor-improved-init": "Gabor MFN + improved init", "magnet-fathony-init": "MAGNet w/o improved init",
              "magnet": "MAGNet"}


class PSNRProbe(nn.Module):
    """Wraps a coordinate network and records the PSNR of every `every`-th training forward pass (the
    prediction before that optimizer step), so an unchanged fitting loop yields a curve."""

    def __init__(self, net: nn.Module, image: torch.Tensor, every: int):
        super().__init__()
        self.net, self.every, self.calls = net, every, 0
        self.target = image.reshape(image.shape[0], -1).t()
        self.curve: list[tuple[int, float]] = []

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        out = self.net(coords)
        if torch.is_grad_enabled():
            if self.calls % self.every == 0:
                self.curve.append((self.calls, psnr(out.detach(), self.target)))
            self.calls += 1
        return out


@dataclass
class KodakFit:
    image: int
    row: str
    params: int
    lr: float
    psnr: float
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    reconstruction: torch.Tensor | None = None   # (3, H, W) clamped to [0, 1]


def fit_kodak(images: list[int], rows: list[str], iterations: int, lr: float, siren_lr: float, downsample: int,
              seed: int = 0, device: str = "cpu", record_every: int = 25) -> list[KodakFit]:
    """Fit every row to every image (shrunk by `downsample`; 1 = the paper's 768×512) and return the fits."""
    fits = []
    for number in images:
        image = shrink(kodak_image(number), downsample).to(device)
        coords = coordinate_grid(*image.shape[-2:]).to(device)
        for row in rows:
            torch.manual_seed(seed)
            config = kodak_kernel_net_config(row)
            net = config.build(2, 3).to(device)
            row_lr = siren_lr if config.name == "siren" else lr
            probe = PSNRProbe(net, image, record_every)
            result = fit_image(probe, image, iterations, row_lr)
            with torch.no_grad():
                recon = net(coords).clamp(0, 1).t().reshape(image.shape).cpu()
            curve = probe.curve + [(iterations, result.psnr)]
            fits.append(KodakFit(number, row, sum(p.numel() for p in net.parameters()), row_lr, result.psnr,
                                 result.seconds, curve, recon))
    return fits


def mean_psnr(fits: list[KodakFit], row: str) -> float:
    values = [f.psnr for f in fits if f.row == row]
    return sum(values) / len(values) if values else math.nan

