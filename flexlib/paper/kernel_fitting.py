"""Bandwidth of kernel parameterizations (§4.1, Fig. 4): fit one 2-D kernel target on a 33×33 grid.

Targets: Gabor filters sin(ω x) sin(ω y) · exp(-(x² + y²) / 2σ²) on linspace(-1, 1, 33)² for ω ∈ {1, 4, 16, 64},
the authors' random 33×33 kernel, and (full profile) an 11×11 AlexNet first-layer kernel. σ = 0.33 is not stated in
the paper: it is the value for which a zero output and an ideal clamped output reproduce the MSE/PSNR floors of
the authors' result files to 4–5 digits (e.g. MSE 0.0201056 = mean(target²) at ω = 16).

Models: N-Jets of order N (flexlib.models.NJetConv's Gaussian-derivative basis, sampled on the 33 pixels), SIREN,
MAGNet and MAGNet-S (a MAGNet of as many parameters as an order-9 N-Jet). Each is fitted with full-batch Adam on the
MSE; like the authors we report the lowest MSE reached (the best iterate), and PSNR = 10 log10(1 / MSE) of the
output clamped to [0, 1] (so targets with negative values cap the PSNR, as in the authors' files).
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fitting import coordinate_grid, psnr_from_mse
from ..layers.kernelnets import MAGNet, SIREN
from ..models.njet import NJetConv

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "kernel_fitting"
GRID_SIZE = 33
GABOR_SIGMA = 0.33


def gabor_target(freq: float, size: int = GRID_SIZE, sigma: float = GABOR_SIGMA) -> torch.Tensor:
    """sin(ω y) sin(ω x) exp(-(x² + y²) / 2σ²) on linspace(-1, 1, size)²: (size, size)."""
    y, x = coordinate_grid(size, size).unbind(-1)
    values = torch.sin(freq * y) * torch.sin(freq * x) * torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    return values.reshape(size, size)


def random_target() -> torch.Tensor:
    """The authors' random 33×33 kernel (uniform in [0, 1]), shipped in flexlib/assets/kernel_fitting."""
    path = ASSETS / "random_kernel.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall flexlib (it ships in flexlib/assets/kernel_fitting)")
    return torch.from_numpy(np.load(path)).float()[0]


def alexnet_target(size: int = GRID_SIZE) -> torch.Tensor:
    """Channel 0 of the first 11×11 filter of ImageNet-pretrained AlexNet, resampled bilinearly to size×size."""
    import torchvision
    try:   # torch.hub announces a download with the cache's absolute path (on stdout): kept out of notebooks' outputs
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
                                               progress=False)
    except Exception as error:   # offline: the download fails with URLError/OSError/RuntimeError
        raise RuntimeError(
            f"the AlexNet target needs torchvision's pretrained AlexNet weights (IMAGENET1K_V1), which could not be "
            f"loaded or downloaded ({type(error).__name__}); put alexnet-owt-7be5be79.pth in the checkpoints/ folder "
            f"of torch.hub.get_dir(), or drop 'alexnet' from targets") from error
    kernel = model.features[0].weight.detach()[0, 0]
    return F.interpolate(kernel[None, None], size=(size, size), mode="bilinear", align_corners=True)[0, 0]


def make_target(name: str, size: int = GRID_SIZE) -> torch.Tensor:
    """'gabor<ω>' (e.g. 'gabor16'), 'random' or 'alexnet'."""
    if name.startswith("gabor"):
        return gabor_target(float(name[len("gabor"):]), size)
    if name == "random":
        return random_target()
    if name == "alexnet":
        return alexnet_target(size)
    raise ValueError(f"unknown target {name!r}; expected 'gabor<freq>' (e.g. 'gabor4'), 'random' or 'alexnet'")


class NJetKernel(nn.Module):
    """An N-Jet kernel as a fitting model: one NJetConv (1 → 1, no bias) sampled on the size×size pixel grid."""

    def __init__(self, order: int, size: int = GRID_SIZE, init_sigma: float = 2.0):
        super().__init__()
        self.size = size
        self.conv = NJetConv(1, 1, data_dim=2, order=order, init_sigma=init_sigma, bias=False)

    def forward(self) -> torch.Tensor:
        return self.conv.sample_kernel(self.size)[0, 0]


class CoordinateKernel(nn.Module):
    """A kernel network (coordinates → 1 value) evaluated on the size×size grid."""

    def __init__(self, net: nn.Module, size: int = GRID_SIZE):
        super().__init__()
        self.net, self.size = net, size
        self.register_buffer("coords", coordinate_grid(size, size))

    def forward(self) -> torch.Tensor:
        return self.net(self.coords).reshape(self.size, self.size)


def build_model(name: str, size: int = GRID_SIZE) -> nn.Module:
    """'njet<N>' (order N), 'siren' (3 layers, 32 hidden, ω₀ = 30), 'magnet' (the paper's 3-layer, 32-hidden
    MAGNet), 'magnet-s' (1 layer, 3 hidden: 58 parameters, about an order-9 N-Jet's 56)."""
    if name.startswith("njet"):
        return NJetKernel(int(name[len("njet"):]), size)
    if name == "siren":
        return CoordinateKernel(SIREN(2, 1, hidden_features=32, num_layers=3), size)
    if name == "magnet":
        return CoordinateKernel(MAGNet(2, 1, hidden_features=32, num_layers=3), size)
    if name == "magnet-s":
        return CoordinateKernel(MAGNet(2, 1, hidden_features=3, num_layers=1), size)
    raise ValueError(f"unknown model {name!r}; expected 'njet<order>', 'siren', 'magnet' or 'magnet-s'")


@dataclass
class KernelFit:
    mse: float                     # lowest MSE reached (best iterate)
    psnr: float                    # of the best iterate's output clamped to [0, 1]
    params: int
    seconds: float
    prediction: torch.Tensor       # (size, size), best iterate
    curve: list[float] = field(default_factory=list)   # MSE every `record_every` iterations


def fit_kernel(model: nn.Module, target: torch.Tensor, iterations: int, lr: float,
               record_every: int = 50) -> KernelFit:
    """Full-batch Adam on MSE(model(), target); keeps the best iterate."""
    if iterations < 1:
        raise ValueError(f"fit_kernel: iterations must be ≥ 1, got {iterations}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, curve = math.inf, None, []
    started = time.perf_counter()
    for step in range(iterations + 1):
        loss = F.mse_loss(model(), target)
        value = loss.item()
        if math.isfinite(value) and value < best:
            best, best_state = value, copy.deepcopy(model.state_dict())
        if step % record_every == 0 or step == iterations:
            curve.append(value)
        if step == iterations:
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    with torch.no_grad():
        prediction = model()
    mse_clamped = F.mse_loss(prediction.clamp(0, 1), target).item()
    return KernelFit(best, psnr_from_mse(mse_clamped), sum(p.numel() for p in model.parameters()), seconds,
                     prediction, curve)


# --- the authors' result files -------------------------------------------------------------------------------

def read_authors_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Parse one of the authors' result files: blocks introduced by a label line ('Freq', 'Order', 'MSE',
    'PSNR') followed by lines of comma-separated numbers. Returns {label: 2-D array (lines × values)}."""
    blocks: dict[str, list[list[float]]] = {}
    label = None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line[0].isalpha():
            label = line
            blocks[label] = []
        elif label is None:
            raise ValueError(f"{path}: numbers before any label line")
        else:
            blocks[label].append([float(v) for v in line.split(",")])
    return {k: np.array(v) for k, v in blocks.items() if v}


# Which file holds which (model, target) and how its MSE array is laid out. The labels inside the files are not
# reliable (srf19_random says "Freq" over nine values that are the orders 1–9; srf19_gabor has no "Freq" line but
# four rows, ω = 1, 4, 16, 64), so the layout is stated here. "magnet" files are read as MAGNet-S and
# "magnetbig"/"sirenbig" as MAGNet/SIREN, our reading of the authors' naming. All use lr 0.01 and 5000 iterations
# except SIREN on Gabor (lr 0.001).
AUTHORS_FILES = {
    ("njet", "gabor"): ("srf19_gabor_lr001_it5000_33px.csv", "freq x order"),
    ("njet", "random"): ("srf19_random_lr001_it5000_33px.csv", "order"),
    ("njet", "alexnet"): ("srf19_alexnet_lr001_it5000_11px.csv", "order"),
    ("magnet-s", "gabor"): ("magnet_gabor_lr001_it5000_33px.csv", "freq"),
    ("magnet-s", "random"): ("magnet_random_lr001_it5000_33px.csv", "single"),
    ("magnet-s", "alexnet"): ("magnet_alexnet_lr001_it5000_33px.csv", "single"),
    ("magnet", "gabor"): ("magnetbig_gabor_lr001_it5000_33px.csv", "freq"),
    ("magnet", "random"): ("magnetbig_random_lr001_it5000_33px.csv", "single"),
    ("magnet", "alexnet"): ("magnetbig_alexnet_lr001_it5000_33px.csv", "single"),
    ("siren", "gabor"): ("sirenbig_gabor_lr0001_it5000_33px.csv", "freq"),
    ("siren", "random"): ("sirenbig_random_lr001_it5000_33px.csv", "single"),
    ("siren", "alexnet"): ("sirenbig_alexnet_lr001_it5000_33px.csv", "single"),
}
AUTHORS_FREQS = (1, 4, 16, 64)


def authors_result(model: str, target: str, folder: Path = ASSETS / "authors_results") -> dict | None:
    """The authors' {'mse', 'psnr'} for one of our (model, target) settings, or None where they have none."""
    family = "njet" if model.startswith("njet") else model
    kind = "gabor" if target.startswith("gabor") else target
    if (family, kind) not in AUTHORS_FILES:
        return None
    filename, layout = AUTHORS_FILES[(family, kind)]
    data = read_authors_csv(folder / filename)
    mse, psnr = data["MSE"], data["PSNR"]
    freq = float(target[len("gabor"):]) if kind == "gabor" else None
    order = int(model[len("njet"):]) if family == "njet" else None
    if freq is not None and freq not in AUTHORS_FREQS:
        return None
    if layout == "freq x order":
        i, j = AUTHORS_FREQS.index(freq), order - 1
    elif layout == "order":
        i, j = 0, order - 1
    elif layout == "freq":
        i, j = 0, AUTHORS_FREQS.index(freq)
    else:
        i, j = 0, 0
    if j >= mse.shape[1] or (order is not None and order < 1):
        return None
    return {"mse": float(mse[i, j]), "psnr": float(psnr[i, j]), "file": filename}


def authors_lr(model: str, target: str) -> float:
    """The learning rate of the authors' result file for a (model, target) setting: 0.01, except SIREN on the Gabor
    targets (`sirenbig_gabor_lr0001_...`): 0.001. Settings without a file get 0.01 (App. D.2)."""
    family = "njet" if model.startswith("njet") else model
    kind = "gabor" if target.startswith("gabor") else target
    filename = AUTHORS_FILES.get((family, kind), ("_lr001_",))[0]
    return 0.001 if "_lr0001_" in filename else 0.01


def run_bandwidth(targets: list[str], models: list[str], iterations: int, lr: float | None = None, seed: int = 0,
                  device: str = "cpu", record_every: int = 50) -> tuple[list[dict], dict]:
    """Fit every model to every target, at `lr` or (None) at the learning rate of the authors' result file for
    that setting (`authors_lr`). Returns one row per fit (ours beside the authors' values) and the predictions
    {(model, target): (size, size) tensor}, with the targets under (None, target)."""
    rows, kernels = [], {}
    for target_name in targets:
        target = make_target(target_name).to(device)
        kernels[(None, target_name)] = target.cpu()
        for model_name in models:
            torch.manual_seed(seed)
            model = build_model(model_name).to(device)
            model_lr = authors_lr(model_name, target_name) if lr is None else lr
            fit = fit_kernel(model, target, iterations, model_lr, record_every)
            kernels[(model_name, target_name)] = fit.prediction.cpu()
            authors = authors_result(model_name, target_name) or {}
            rows.append({"model": model_name, "target": target_name, "params": fit.params, "lr": model_lr,
                         "mse": fit.mse, "psnr_db": fit.psnr, "authors_mse": authors.get("mse", math.nan),
                         "authors_psnr_db": authors.get("psnr", math.nan), "authors_file": authors.get("file", ""),
                         "seconds": round(fit.seconds, 2), "curve": fit.curve})
    return rows, kernels


FIT_FLOOR = 1e-6   # MSE below this: the target is fitted (the authors' files round to 1e-8)


def agreement(ours: float, authors: float, factor: float = 3.0) -> str:
    """How our final MSE compares with the authors' for one cell: 'match' when both fit the target (MSE below
    FIT_FLOOR) or agree within `factor`; else 'ours lower' or 'ours higher'; 'no file' without an authors' value."""
    if math.isnan(authors):
        return "no file"
    if max(ours, authors) < FIT_FLOOR:
        return "match"
    low, high = sorted((max(ours, 1e-12), max(authors, 1e-12)))
    if high / low <= factor:
        return "match"
    return "ours lower" if ours < authors else "ours higher"
