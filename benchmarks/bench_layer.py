"""Benchmark 1 (+6): one FlexConv against nn.ConvNd with a kernel of the same (cropped) size.

2D: CIFAR shapes (32×32, widths 24 and 48, cropped kernel 3…33; batch 64 as in the paper up to k = 9, smaller
for the larger kernels on CPU, where a 33×33 step at batch 64 takes a minute). 1D causal: sMNIST 784, sCIFAR 1024, SC_raw 16000
with the crop of the causal mask at init. Per shape: a training step (forward + backward, `train`), and an
inference forward under no_grad (`eval`) for the live layer (kernel sampled from the current parameters in every
forward), the frozen layer (FlexConv.freeze(): the kernel sampled once; `eval_frozen_over_baked` is the cost of
its lookup and of FlexConv's own checks) and the baked plain conv (flexlib.bake). FlexConv runs with
conv_mode="spatial" so that the ratio measures what the kernel costs beside the same convolution; `auto` adds the
automatic mode.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from common import parse_args, save, set_crop, table
from flexlib.paper.timing import peak_memory, time_interleaved

import flexlib
from flexlib import FlexConv


class CausalConv1d(nn.Conv1d):
    def forward(self, x):
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


def layers(c_in: int, c_out: int, dim: int, causal: bool, k: int | None, n: int, device):
    """(FlexConv spatial, FlexConv auto, nn.ConvNd) with the same cropped kernel size; k=None keeps the init crop."""
    torch.manual_seed(0)
    flex = FlexConv(c_in, c_out, dim, causal=causal, conv_mode="spatial").to(device)
    if k is not None:
        set_crop(flex, k, n)
    auto = FlexConv(c_in, c_out, dim, causal=causal, conv_mode="auto").to(device)
    auto.load_state_dict(flex.state_dict())
    size = flex.kernel_for((n,) * dim).shape[2:]
    if causal:
        plain = CausalConv1d(c_in, c_out, size[0]).to(device)
    else:
        plain = {1: nn.Conv1d, 2: nn.Conv2d}[dim](c_in, c_out, size, padding=[s // 2 for s in size]).to(device)
    return flex, auto, plain, size[0]


def measure(flex, auto, plain, x, repeats, device) -> dict:
    def train(m):
        def step():
            m.zero_grad(set_to_none=True)
            m(x).square().mean().backward()
        return step

    def infer(m):
        def fwd():
            with torch.no_grad():
                m(x)
        return fwd

    t = time_interleaved({"conv": train(plain), "flex": train(flex), "auto": train(auto)}, repeats, device=device)
    row = {"train_conv_ms": t["conv"] * 1e3, "train_flex_ms": t["flex"] * 1e3, "train_auto_ms": t["auto"] * 1e3,
           "train_ratio": t["flex"] / t["conv"], "train_auto_ratio": t["auto"] / t["conv"]}
    frozen = copy.deepcopy(flex).freeze()
    for m in (plain, flex, frozen):
        m.eval()
    baked = flexlib.bake(flex, x)
    t = time_interleaved({"conv": infer(plain), "live": infer(flex), "frozen": infer(frozen), "baked": infer(baked)},
                         repeats, device=device)
    for m in (plain, flex):
        m.train()
    row.update({"eval_conv_ms": t["conv"] * 1e3, "eval_live_ratio": t["live"] / t["conv"],
                "eval_frozen_ratio": t["frozen"] / t["conv"], "eval_baked_ratio": t["baked"] / t["conv"],
                "eval_frozen_over_baked": t["frozen"] / t["baked"]})
    mem_conv = peak_memory(train(plain), device)
    mem_flex = peak_memory(train(flex), device)
    row.update({"train_peak_conv_mib": mem_conv["peak_mib"], "train_peak_flex_mib": mem_flex["peak_mib"],
                "memory_method": mem_flex["method"]})
    return row


def main():
    args = parse_args(__doc__.splitlines()[0])
    cpu = args.device == "cpu"
    settings = {
        "batch_2d": {3: 64, 9: 64, 17: 16, 33: 4} if cpu else {3: 64, 9: 64, 17: 64, 33: 64}, "widths_2d": [24, 48], "kernels_2d": [3, 9, 17, 33] if not args.quick else [3, 33],
        "input_2d": 32, "seq_lengths": ([784, 1024] if cpu else [784, 1024, 16000]) if not args.quick else [784],
        "batch_1d": 2 if cpu else 32, "width_1d": 16 if cpu else 30, "repeats": 3, "repeats_16000": 2,
        "note": "SC_raw (16000) is left out on CPU: its spatial nn.Conv1d baseline (k ≈ 6000) takes minutes per step", "conv_mode": "spatial (train_auto: auto)",
        "train": "forward + backward of mean(y²), gradients cleared", "eval": "forward under torch.no_grad",
    }
    rows = []
    for width in settings["widths_2d"]:
        for k in settings["kernels_2d"]:
            batch = settings["batch_2d"][k]
            x = torch.randn(batch, width, 32, 32, device=args.device)
            flex, auto, plain, size = layers(width, width, 2, False, k, 32, args.device)
            row = {"case": f"2d w{width} k{size} b{batch}", "dim": 2, "width": width, "kernel": size, "batch": batch}
            row.update(measure(flex, auto, plain, x, settings["repeats"], args.device))
            rows.append(row)
            print(row["case"], f"train {row['train_ratio']:.2f}x  eval frozen {row['eval_frozen_ratio']:.2f}x")
    w = settings["width_1d"]
    for n in settings["seq_lengths"]:
        x = torch.randn(settings["batch_1d"] if n < 16000 else 1, w, n, device=args.device)
        flex, auto, plain, size = layers(w, w, 1, True, None, n, args.device)
        row = {"case": f"1d causal L{n} k{size}", "dim": 1, "width": w, "kernel": size, "length": n}
        row.update(measure(flex, auto, plain, x, settings["repeats"] if n < 16000 else settings["repeats_16000"],
                           args.device))
        rows.append(row)
        print(row["case"], f"train {row['train_ratio']:.2f}x  auto {row['train_auto_ratio']:.2f}x")
    table(rows, ["case", "train_conv_ms", "train_ratio", "train_auto_ratio", "eval_live_ratio", "eval_frozen_ratio",
                 "eval_baked_ratio", "eval_frozen_over_baked", "train_peak_conv_mib", "train_peak_flex_mib"])
    two_d = [r for r in rows if r["dim"] == 2]
    summary = {
        "target_train_ratio_2d": 1.25, "target_eval_ratio_2d": 1.05,
        "max_train_ratio_2d": max(r["train_ratio"] for r in two_d),
        "median_train_ratio_2d": sorted(r["train_ratio"] for r in two_d)[len(two_d) // 2],
        "max_eval_frozen_ratio_2d": max(r["eval_frozen_ratio"] for r in two_d),
        "median_eval_frozen_over_baked": sorted(r["eval_frozen_over_baked"] for r in rows)[len(rows) // 2],
        "max_eval_baked_ratio_2d": max(r["eval_baked_ratio"] for r in two_d),
    }
    print(summary)
    save("layer", args, settings, rows, summary)


if __name__ == "__main__":
    main()
