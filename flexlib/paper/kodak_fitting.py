"""Table 5 (§4.1, App. D.2): fit each row's ≈7k-parameter network to each Kodak image with
`flexlib.paper.fitting.fit_image`, keeping the PSNR curve and the reconstruction. `run_fit` is the
`python -m flexlib fit` command: the same fits, configured by a `FitConfig` (params/experiments/kodak.yaml),
written to a run folder.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .._progress import progress
from ..data.kodak_images import kodak_image
from ..engine.config import at_least, every, non_empty, number, one_of, seed_range, to_dict
from ..engine.config import device as a_device
from ..engine.distributed import resolve_device
from ..engine.provenance import provenance
from ..models.image_nets import KODAK_NETS, kodak_kernel_net_config
from .fitting import fit_image, shrink

# Table 5: average PSNR (dB) over the 24 Kodak images at 768×512 after 20 000 iterations.
KODAK_PAPER_PSNR = {"siren": 25.665, "fourier": 23.276, "gabor": 25.361, "gabor-improved-init": 25.606,
                    "magnet-fathony-init": 25.791, "magnet": 25.893}
ROW_LABELS = {"siren": "SIREN", "fourier": "Fourier MFN", "gabor": "Gabor MFN",
              "gabor-improved-init": "Gabor MFN + improved init", "magnet-fathony-init": "MAGNet w/o improved init",
              "magnet": "MAGNet"}


def _checked(default, rule, factory: bool = False):
    """A config field with the rule its values must pass (flexlib.engine.config)."""
    kind = "default_factory" if factory else "default"
    return field(**{kind: default}, metadata={"check": rule})


_IMAGE = lambda v: None if isinstance(v, int) and 1 <= v <= 24 else "an integer 1..24 (kodim01..kodim24)"


@dataclass
class FitConfig:
    """Kodak image fitting (Table 5, App. D.2): one ≈7k-parameter kernel net per Table 5 row and image."""
    rows: list[str] = _checked(lambda: list(ROW_LABELS), every(one_of(lambda: list(KODAK_NETS), "Table 5 rows")),
                               factory=True)              # flexlib.models.image_nets
    images: list[int] = _checked(lambda: list(range(1, 25)), every(_IMAGE), factory=True)   # kodimXX numbers
    iterations: int = _checked(20000, at_least(1))
    lr: float = _checked(0.01, number(0, strict=True))
    siren_lr: float = _checked(0.001, number(0, strict=True))   # App. D.2: SIRENs diverge at 0.01
    downsample: int = _checked(1, at_least(1))   # fit an image shrunk by this factor (quick profile); 1 = 768x512
    seed: int = _checked(0, seed_range)
    device: str = _checked("auto", a_device)
    out_dir: str = _checked("runs", non_empty)
    description: str = ""


@dataclass
class KodakFit:
    image: int
    row: str
    params: int
    lr: float
    psnr: float
    mse: float
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    reconstruction: torch.Tensor | None = None   # (3, H, W) clamped to [0, 1]


def fit_kodak(images: list[int], rows: list[str], iterations: int, lr: float, siren_lr: float, downsample: int,
              seed: int = 0, device: str = "cpu", record_every: int = 25, on_fit=None) -> list[KodakFit]:
    """Fit every row to every image (shrunk by `downsample`; 1 = the paper's 768×512) and return the fits.

    Every fit starts from the same seed. `on_fit(fit)` is called after each fit (e.g. to write progress)."""
    fits = []
    bar = progress(total=len(images) * len(rows), desc="Kodak fits")
    for number in images:
        image = shrink(kodak_image(number), downsample).to(device)
        for row in rows:
            torch.manual_seed(seed)
            config = kodak_kernel_net_config(row)
            net = config.build(2, 3).to(device)
            row_lr = siren_lr if config.name == "siren" else lr
            result = fit_image(net, image, iterations, row_lr, record_every=record_every)
            bar.update()
            fit = KodakFit(number, row, sum(p.numel() for p in net.parameters()), row_lr, result.psnr, result.mse,
                           result.seconds, result.curve, result.reconstruction.cpu())
            fits.append(fit)
            if on_fit is not None:
                on_fit(fit)
    bar.close()
    return fits


def mean_psnr(fits: list[KodakFit], row: str) -> float:
    values = [f.psnr for f in fits if f.row == row]
    return sum(values) / len(values) if values else math.nan


def run_fit(cfg, name: str = "kodak", run_dir: str | Path | None = None) -> list[dict]:
    """`python -m flexlib fit`: fit every Table 5 row of `cfg` (a FitConfig) to every image; write results.csv
    (after every fit), summary.json and metadata.json to the run folder."""
    device = resolve_device(cfg.device)
    run_dir = Path(run_dir) if run_dir else Path(cfg.out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset = f"Kodak (24 images, 768x512{'' if cfg.downsample == 1 else f', shrunk {cfg.downsample}x'})"
    (run_dir / "metadata.json").write_text(json.dumps({"name": name, "dataset": dataset, "seed": cfg.seed,
                                                       "config": to_dict(cfg), **provenance(device, 1)}, indent=1))
    rows = []

    def record(fit: KodakFit) -> None:
        rows.append({k: v for k, v in asdict(fit).items() if k not in ("curve", "reconstruction")}
                    | {"seconds": round(fit.seconds, 2)})
        print(f"kodim{fit.image:02d} {fit.row:>20}: PSNR {fit.psnr:.3f} dB ({fit.seconds:.1f} s)")
        with open(run_dir / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    fits = fit_kodak(cfg.images, cfg.rows, cfg.iterations, cfg.lr, cfg.siren_lr, cfg.downsample, cfg.seed,
                     str(device), record_every=0, on_fit=record)
    means = {row: mean_psnr(fits, row) for row in cfg.rows}
    (run_dir / "summary.json").write_text(json.dumps({"dataset": dataset, "mean_psnr": means}, indent=1))
    return rows
