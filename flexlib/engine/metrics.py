"""Per-epoch metrics of a run, written as metrics.csv and metrics.json after every epoch."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from torch import nn

from .rundir import write_text


def mask_stats(model: nn.Module) -> dict[str, float]:
    """μ and σ of every FlexConv mask, keyed ``<module path>.mu[d]`` / ``.sigma[d]`` (paper units, eq. 1)."""
    out = {}
    for name, module in model.named_modules():
        mask = getattr(module, "mask", None)
        if isinstance(mask, nn.Module) and hasattr(mask, "mean") and hasattr(mask, "sigma"):
            for d, (mu, sigma) in enumerate(zip(mask.mean.detach().flatten().tolist(),
                                                mask.sigma.detach().flatten().tolist())):
                out[f"{name}.mu[{d}]"] = mu
                out[f"{name}.sigma[{d}]"] = sigma
    return out


def write_metrics(rows: list[dict], run_dir: Path) -> None:
    """Rewrite both files, each atomically, from the full history (rows may gain columns, e.g. the fine-tuning
    stage)."""
    write_text(run_dir / "metrics.json", json.dumps(rows, indent=1))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(run_dir / "metrics.csv", text.getvalue())
