"""Image fitting (Sec. 4.1, Table 5): regress an image's RGB values from pixel coordinates in [-1, 1]^2.

Each network is fitted to one image with full-batch Adam for N iterations at a constant learning rate (App. D.2);
PSNR is computed on the outputs clamped to [0, 1].
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import FitConfig, to_dict
from .data.kodak import kodak_image
from .train.provenance import provenance
from .train.run import resolve_device
from .distributed import DistInfo


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
    for step in tqdm(range(iterations), desc=progress, leave=False, **({} if progress else {"disable": True})):
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


def run_fit(cfg: FitConfig, name: str = "kodak", run_dir: str | Path | None = None) -> list[dict]:
    """Fit every Table 5 row to every image; write results.csv, summary.json and metadata.json to the run folder."""
    from .models.kodak import kodak_kernel_net_config
    device = resolve_device(cfg.device, DistInfo())
    run_dir = Path(run_dir) if run_dir else Path(cfg.out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset = f"Kodak (24 images, 768x512{'' if cfg.downsample == 1 else f', shrunk {cfg.downsample}x'})"
    (run_dir / "metadata.json").write_text(json.dumps({"name": name, "dataset": dataset, "seed": cfg.seed,
                                                       "config": to_dict(cfg), **provenance(device, 1)}, indent=1))
    rows = []
    for number in cfg.images:
        image = shrink(kodak_image(number), cfg.downsample).to(device)
        for row in cfg.rows:
            torch.manual_seed(cfg.seed)
            net_cfg = kodak_kernel_net_config(row)
            net = net_cfg.build(2, 3).to(device)
            lr = cfg.siren_lr if net_cfg.name == "siren" else cfg.lr
            result = fit_image(net, image, cfg.iterations, lr, progress=f"kodim{number:02d} {row}")
            rows.append({"image": number, "row": row, "params": sum(p.numel() for p in net.parameters()),
                         "lr": lr, "psnr": result.psnr, "mse": result.mse, "seconds": round(result.seconds, 2)})
            print(f"kodim{number:02d} {row:>20}: PSNR {result.psnr:.3f} dB ({result.seconds:.1f} s)")
            with open(run_dir / "results.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    means = {row: sum(r["psnr"] for r in rows if r["row"] == row) / len(cfg.images) for row in cfg.rows}
    (run_dir / "summary.json").write_text(json.dumps({"dataset": dataset, "mean_psnr": means}, indent=1))
    return rows
