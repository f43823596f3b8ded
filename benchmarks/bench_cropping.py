"""Benchmark 3 (+6): dynamic cropping on vs off (crop_threshold=None) for FlexNet-16 at initialization, one
training step on CIFAR-shaped input (the paper, §5: 5.5× faster per epoch on CIFAR-10).

Both runs use spatial convolutions, as the paper's did. The cropped kernel at init depends on the mask's initial
σ: the paper's σ² = 0.125 (App. D.1) keeps 25×25 of the 33×33 kernel, the official code's σ = 0.075 keeps 5×5.
"""
from __future__ import annotations

import torch

from common import flexnet16, kernel_sizes, parse_args, save, table, train_step
from flexlib.paper.timing import peak_memory, time_interleaved


def main():
    args = parse_args(__doc__.splitlines()[0])
    settings = {"model": "flexnet-16 (flexlib.models.create)", "batch": 1 if args.device == "cpu" else 64,
                "input": [3, 32, 32], "conv_mode": "spatial", "repeats": 2, "warmup": 0,
                "mask_inits": ["official"] if args.device == "cpu" else ["official", "paper"]}
    torch.manual_seed(0)
    x = torch.randn(settings["batch"], 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (settings["batch"],), device=args.device)
    rows = []
    for mask_init in settings["mask_inits"]:
        cropped = flexnet16(mask_init, 0.1, device=args.device)
        full = flexnet16(mask_init, None, device=args.device)
        t = time_interleaved({"cropped": train_step(cropped, x, y), "full": train_step(full, x, y)},
                             settings["repeats"], warmup=0, device=args.device, budget_s=0)
        rows.append({"mask_init": mask_init, "cropped_kernel": kernel_sizes(cropped, (32, 32))[1],
                     "cropped_ms": t["cropped"] * 1e3, "full_ms": t["full"] * 1e3,
                     "speedup": t["full"] / t["cropped"],
                     "peak_cropped_mib": peak_memory(train_step(cropped, x, y), args.device)["peak_mib"],
                     "peak_full_mib": peak_memory(train_step(full, x, y), args.device)["peak_mib"]})
        print(rows[-1])
    table(rows, ["mask_init", "cropped_kernel", "cropped_ms", "full_ms", "speedup", "peak_cropped_mib",
                 "peak_full_mib"])
    summary = {"paper_speedup": 5.5, **{f"speedup_{r['mask_init']}_init": r["speedup"] for r in rows}}
    print(summary)
    save("cropping", args, settings, rows, summary)


if __name__ == "__main__":
    main()
