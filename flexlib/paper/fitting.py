"""Fitting a coordinate network to a signal (§4.1): the coordinate grid and PSNR that Table 5 (flexlib.paper.kodak_fitting)
and Fig. 4 (flexlib.paper.kernel_fitting) share, and Table 5's full-batch Adam loop over an image's RGB values.

Each network is fitted with full-batch Adam for N iterations at a constant learning rate (App. D.2); PSNR is
computed on the outputs clamped to [0, 1].
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .._progress import progress as progress_bar


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """(H*W, 2) pixel-centre coordinates (y, x) spanning [-1, 1] in each axis, row-major like the image."""
    ys, xs = torch.linspace(-1, 1, height), torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def psnr_from_mse(mse: float) -> float:
    """10 log10(1 / MSE) for signals in [0, 1]."""
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of images in [0, 1]; the prediction is clamped to [0, 1] first."""
    return psnr_from_mse(F.mse_loss(prediction.clamp(0, 1), target).item())


@dataclass
class FitResult:
    psnr: float
    mse: float
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)  # (iteration, PSNR) every `record_every` steps
    reconstruction: torch.Tensor | None = None  # (3, H, W), clamped to [0, 1]


def fit_image(net: nn.Module, image: torch.Tensor, iterations: int, lr: float, progress: str | None = None,
              record_every: int = 0) -> FitResult:
    """Fit ``net`` ((N, 2) coordinates -> (N, 3)) to a (3, H, W) image in [0, 1] on the image's device.

    With record_every > 0 the PSNR of the prediction before every record_every-th step is kept as a curve."""
    coords = coordinate_grid(*image.shape[-2:]).to(image.device)
    target = image.reshape(3, -1).t()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    curve = []
    started = time.time()
    for step in progress_bar(range(iterations), desc=progress, leave=False, disable=not progress):
        out = net(coords)
        loss = F.mse_loss(out, target)
        if record_every and step % record_every == 0:
            curve.append((step, psnr(out.detach(), target)))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss while fitting ({progress}); try a lower learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        prediction = net(coords)
    final = psnr(prediction, target)
    if record_every:
        curve.append((iterations, final))
    return FitResult(final, F.mse_loss(prediction.clamp(0, 1), target).item(), time.time() - started, curve,
                     prediction.clamp(0, 1).t().reshape(image.shape).detach())


def shrink(image: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == 1:
        return image
    size = (image.shape[-2] // factor, image.shape[-1] // factor)
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)
