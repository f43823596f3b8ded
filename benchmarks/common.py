"""Shared helpers of the benchmark scripts: provenance, JSON output, model builders. The timer and the memory
probe are flexlib.paper.timing's (the compute notebook uses the same ones).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
from pathlib import Path

import torch

from flexlib.engine.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "benchmarks"


def parse_args(description: str, threads: int = 2) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=threads, help="torch.set_num_threads (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args


def metadata(args: argparse.Namespace, settings: dict) -> dict:
    """Provenance of a run (flexlib.engine.provenance), the machine's load, and the benchmark's own settings."""
    return {**provenance(args.device), "load_average_1min": os.getloadavg()[0],
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "settings": settings}


def save(name: str, args: argparse.Namespace, settings: dict, rows: list[dict], summary: dict) -> Path:
    """results/benchmarks/<name>.json, or results/benchmarks/gpu/<name>.json for a run on CUDA."""
    folder = RESULTS / "gpu" if torch.device(args.device).type == "cuda" else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"benchmark": name, "metadata": metadata(args, settings), "summary": summary, "rows": rows}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def set_crop(conv, kernel_size: int, input_size: int) -> None:
    """Set a FlexConv's mask σ so that dynamic cropping keeps `kernel_size` points per dim of the kernel grid
    for an input of `input_size` (μ stays at its init)."""
    from flexlib.layers.grids import kernel_size_for
    from flexlib.layers.mask import threshold_radius
    full = kernel_size_for(input_size)
    step = 2.0 / (full - 1)
    if conv.causal:
        half = (kernel_size - 1 + 0.5) * step
    else:
        half = (kernel_size // 2 + 0.5) * step
    with torch.no_grad():
        conv.mask.sigma_param.fill_(half / threshold_radius(conv.crop_threshold))


def fmt_ratio(x: float) -> str:
    return f"{x:5.2f}x"


def table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(widths[c]) for c in columns))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def no_grad_fn(fn):
    def wrapped():
        with torch.no_grad():
            fn()
    return wrapped



def flexnet16(mask_init: str = "paper", crop_threshold: float | None = 0.1, conv_mode: str = "spatial",
              device="cpu") -> torch.nn.Module:
    """The CIFAR-10 FlexNet-16 of flexlib.models at initialization, with every FlexConv's crop and conv mode set."""
    from flexlib import FlexConv
    from flexlib.models import create
    torch.manual_seed(0)
    model = create("flexnet-16", in_channels=3, num_classes=10, mask_init=mask_init)
    for m in model.modules():
        if isinstance(m, FlexConv):
            m.crop_threshold = crop_threshold
            m.conv_mode = conv_mode
    return model.to(device)


def train_step(model, x, y):
    """One SGD-free training step: forward, cross-entropy, backward (gradients cleared first)."""
    def step():
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return step


def kernel_sizes(model, input_size) -> list[int]:
    from flexlib import FlexConv
    return [m.kernel_for(input_size).shape[-1] for m in model.modules() if isinstance(m, FlexConv)]
