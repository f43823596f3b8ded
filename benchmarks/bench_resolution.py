"""Benchmark 4 (+6): a FlexNet-16 training step at 16×16 vs 32×32 (the paper, §4.3: 179 vs 222 ms per batch on a
FlexNet-7, a 24 % saving when training alias-free at the lower resolution).

Same model and weights at both sizes; the kernel grid follows the input (17 vs 33 points per dim), so the
cropped kernel shrinks with it. conv_mode="auto" (what training uses).
"""
from __future__ import annotations

import torch

from common import flexnet16, kernel_sizes, parse_args, save, table, train_step
from flexlib.paper.timing import peak_memory, time_interleaved


def main():
    args = parse_args(__doc__.splitlines()[0])
    settings = {"model": "flexnet-16 (flexlib.models.create)", "batch": 8 if args.device == "cpu" else 64,
                "mask_init": "official", "conv_mode": "auto", "repeats": 3 if args.quick else 5}
    model = flexnet16(settings["mask_init"], 0.1, "auto", device=args.device)
    y = torch.randint(0, 10, (settings["batch"],), device=args.device)
    inputs = {n: torch.randn(settings["batch"], 3, n, n, device=args.device) for n in (16, 32)}
    t = time_interleaved({n: train_step(model, x, y) for n, x in inputs.items()}, settings["repeats"],
                         device=args.device)
    rows = [{"input": n, "step_ms": t[n] * 1e3, "kernel": kernel_sizes(model, (n, n))[1],
             "peak_mib": peak_memory(train_step(model, inputs[n], y), args.device)["peak_mib"]} for n in (16, 32)]
    table(rows, ["input", "kernel", "step_ms", "peak_mib"])
    summary = {"paper_saving": 0.24, "saving": 1.0 - t[16] / t[32]}
    print(summary)
    save("resolution", args, settings, rows, summary)


if __name__ == "__main__":
    main()
