"""Table 5 for the notebook: fit each row's ≈7k-parameter network to each Kodak image with the engine's
`flexlib.fit.fit_image`, keeping the PSNR curve and the reconstruction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .data.kodak import kodak_image
from .fit import fit_image, shrink
from .models.kodak import kodak_kernel_net_config

# Table 5: average PSNR (dB) over the 24 Kodak images at 768×512 after 20 000 iterations.
KODAK_PAPER_PSNR = {"siren": 25.665, "fourier": 23.276, "gabor": 25.361, "gabor-improved-init": 25.606,
                    "magnet-fathony-init": 25.791, "magnet": 25.893}
ROW_LABELS = {"siren": "SIREN", "fourier": "Fourier MFN", "gabor": "Gabor MFN",
              "gabor-improved-init": "Gabor MFN + improved init", "magnet-fathony-init": "MAGNet w/o improved init",
              "magnet": "MAGNet"}


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
        for row in rows:
            torch.manual_seed(seed)
            config = kodak_kernel_net_config(row)
            net = config.build(2, 3).to(device)
            row_lr = siren_lr if config.name == "siren" else lr
            result = fit_image(net, image, iterations, row_lr, record_every=record_every)
            fits.append(KodakFit(number, row, sum(p.numel() for p in net.parameters()), row_lr, result.psnr,
                                 result.seconds, result.curve, result.reconstruction.cpu()))
    return fits


def mean_psnr(fits: list[KodakFit], row: str) -> float:
    values = [f.psnr for f in fits if f.row == row]
    return sum(values) / len(values) if values else math.nan

