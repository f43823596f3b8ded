"""Benchmark 5: kernel generation alone (mask + kernel net over the cropped grid, forward + backward) as a share
of the FlexConv layer's training step, per layer shape, and over a whole FlexNet-16 training step (all 15 kernels
computed together as the model does, flexlib.layers.fused, and each layer on its own)."""
from __future__ import annotations

import torch

from common import flexnet16, parse_args, save, set_crop, table, train_step
from flexlib.paper.timing import time_interleaved

from flexlib import FlexConv
from flexlib.layers.fused import fused_kernels


def main():
    args = parse_args(__doc__.splitlines()[0])
    settings = {"batch": 4 if args.device == "cpu" else 64, "input": 32, "widths": [24, 48],
                "kernels": [3, 17, 33] if not args.quick else [3, 33], "repeats": 3,
                "conv_mode": "spatial", "model_mask_init": "official"}
    rows = []
    for width in settings["widths"]:
        x = torch.randn(settings["batch"], width, 32, 32, device=args.device)
        for k in settings["kernels"]:
            conv = FlexConv(width, width, 2, conv_mode="spatial").to(args.device)
            set_crop(conv, k, 32)

            def layer():
                conv.zero_grad(set_to_none=True)
                conv(x).square().mean().backward()

            def kernel():
                conv.zero_grad(set_to_none=True)
                conv.kernel_for((32, 32)).square().mean().backward()

            t = time_interleaved({"layer": layer, "kernel": kernel}, settings["repeats"], device=args.device)
            rows.append({"case": f"layer w{width} k{k}", "layer_ms": t["layer"] * 1e3,
                         "kernel_ms": t["kernel"] * 1e3, "share": t["kernel"] / t["layer"]})
            print(rows[-1])
    model = flexnet16(settings["model_mask_init"], 0.1, "auto", device=args.device)
    convs = [m for m in model.modules() if isinstance(m, FlexConv)]
    xb = torch.randn(settings["batch"], 3, 32, 32, device=args.device)
    yb = torch.randint(0, 10, (settings["batch"],), device=args.device)

    def per_layer():
        model.zero_grad(set_to_none=True)
        sum(c.kernel_for((32, 32)).square().mean() for c in convs).backward()

    def batched():
        model.zero_grad(set_to_none=True)
        sum(k.square().mean() for k, _ in fused_kernels(convs, (32, 32))).backward()

    t = time_interleaved({"step": train_step(model, xb, yb), "batched": batched, "per_layer": per_layer},
                         settings["repeats"], device=args.device)
    for name in ("batched", "per_layer"):
        rows.append({"case": f"flexnet-16 step, kernels {name.replace('_', '-')}", "layer_ms": t["step"] * 1e3,
                     "kernel_ms": t[name] * 1e3, "share": t[name] / t["step"]})
    table(rows, ["case", "layer_ms", "kernel_ms", "share"])
    summary = {"flexnet16_kernel_share": rows[-2]["share"], "flexnet16_kernel_share_per_layer": rows[-1]["share"],
               "batched_kernels_speedup": t["per_layer"] / t["batched"],
               "max_layer_share": max(r["share"] for r in rows[:-2])}
    print(summary)
    save("kernel_generation", args, settings, rows, summary)


if __name__ == "__main__":
    main()
