"""Benchmark 2: spatial vs FFT convolution over kernel sizes 3…257, and how far the automatic choice
(flexlib.layers.path_choice.prefer_fft) is from the faster path.

1D: causal, length 1024, kernel 3…257. 2D: 'same', 64×64, kernel 3…65 (on CPU a 129×129 spatial step already
takes ~40 s, and a 257×257 one on an image that holds it many minutes, while the FFT takes ~0.2 s). Forward + backward of the functional
convolutions with a kernel that requires grad, as in training.
"""
from __future__ import annotations

import torch

from common import parse_args, save, table
from flexlib.paper.timing import time_interleaved

from flexlib.layers.conv import conv_nd, fft_conv_nd
from flexlib.layers.path_choice import prefer_fft


def main():
    args = parse_args(__doc__.splitlines()[0])
    cpu = args.device == "cpu"
    settings = {
        "1d": {"batch": 8 if cpu else 32, "channels": 16 if cpu else 64, "length": 1024, "causal": True,
               "kernels": [3, 9, 17, 33, 65, 129, 257] if not args.quick else [3, 65, 257]},
        "2d": {"batch": 2 if cpu else 32, "channels": 8 if cpu else 32, "size": 64, "causal": False,
               "kernels": [3, 5, 9, 17, 33, 65] if not args.quick else [3, 33]},
        "repeats": 3 if args.quick else 5, "timed": "forward + backward (input and kernel require grad)",
    }
    rows = []
    for dim in (1, 2):
        s = settings[f"{dim}d"]
        n = (s["length"],) if dim == 1 else (s["size"],) * 2
        for k in s["kernels"]:
            torch.manual_seed(0)
            x = torch.randn(s["batch"], s["channels"], *n, device=args.device, requires_grad=True)
            w = torch.randn(s["channels"], s["channels"], *(k,) * dim, device=args.device, requires_grad=True)

            def run(fn):
                def step():
                    x.grad = w.grad = None
                    fn(x, w, None, s["causal"]).square().mean().backward()
                return step

            t = time_interleaved({"spatial": run(conv_nd), "fft": run(fft_conv_nd)}, settings["repeats"],
                                 device=args.device)
            auto_fft = prefer_fft(s["batch"], s["channels"], s["channels"], n, (k,) * dim, s["causal"])
            best = min(t.values())
            auto = t["fft"] if auto_fft else t["spatial"]
            rows.append({"dim": dim, "kernel": k, "spatial_ms": t["spatial"] * 1e3, "fft_ms": t["fft"] * 1e3,
                         "fft_over_spatial": t["fft"] / t["spatial"], "auto": "fft" if auto_fft else "spatial",
                         "auto_over_best": auto / best})
            print(rows[-1])
    table(rows, ["dim", "kernel", "spatial_ms", "fft_ms", "fft_over_spatial", "auto", "auto_over_best"])
    worst = max(rows, key=lambda r: r["auto_over_best"])
    summary = {"target_auto_over_best": 1.10, "max_auto_over_best": worst["auto_over_best"],
               "worst_case": f"{worst['dim']}d k{worst['kernel']}",
               "sizes_over_target": [f"{r['dim']}d k{r['kernel']}" for r in rows if r["auto_over_best"] > 1.10]}
    print(summary)
    save("fft_vs_spatial", args, settings, rows, summary)


if __name__ == "__main__":
    main()
