"""Per-epoch metrics of a run, written as metrics.csv and metrics.json after every epoch."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import torch
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


@torch.no_grad()
def frequency_stats(model: nn.Module) -> dict[str, float]:
    """The analytic maximum frequencies averaged over the model's FlexConvs with a multiplicative filter network
    (f⁺_MAGNet, eq. 21; f⁺_FlexConv, eq. 22), in cycles per unit of [-1, 1]: what the alias regularizer (§3.3) acts
    on, recorded every epoch. Empty for models without such layers."""
    from ..alias import flexconv_max_frequency, magnet_max_frequency
    from ..flexconv import FlexConv
    from ..kernelnets import MFN
    convs = [m for m in model.modules() if isinstance(m, FlexConv) and isinstance(m.kernel_net, MFN)]
    if not convs:
        return {}
    return {"f_magnet_mean": sum(float(magnet_max_frequency(c.kernel_net)) for c in convs) / len(convs),
            "f_flexconv_mean": sum(float(flexconv_max_frequency(c)) for c in convs) / len(convs)}


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
