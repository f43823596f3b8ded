"""Operations, host reads and step time of a whole FlexNet-16 and FlexTCN-6 training step against the same
network with discrete 3-tap kernels ("w/ conv. (k = 3)").

Per model: aten operations of one forward + backward as torch.profiler lists them (nested ones included), for the
model's FlexConvs computing their kernels together (flexlib.layers.fused, the default) and each on its own
(`batch_kernels = False`); device-to-host reads per forward (on CUDA the synchronizations
torch.cuda.set_sync_debug_mode reports, on CPU the calls of Tensor.tolist/item/__bool__/__int__/__float__); and the
step time of all, interleaved. FlexNet-16 runs at 32×32 with σ = 0.075, FlexTCN-6 the library's defaults on sMNIST-shaped input (784 steps), both with spatial convolutions (the paper's runs)
and, as a fourth variant, with conv_mode="auto" (on CPU the fitted cost model takes the FFT path where it is
faster here, each FFT layer costing some 300 operations more; `auto_fft_layers` counts them).
"""
from __future__ import annotations

import warnings

import torch

from common import parse_args, save, table, train_step
from flexlib.paper.timing import time_interleaved
from flexlib.models import create

CASES = {
    "flexnet-16": {"model": ("flexnet-16", 3, 10, {"mask_init": "official", "conv_mode": "spatial"}),
                   "plain": ("flexnet-16-conv3", 3, 10, {}), "input": (3, 32, 32)},
    "flextcn-6": {"model": ("flextcn-6", 1, 10, {"conv_mode": "spatial"}),
                  "plain": ("flextcn-6", 1, 10, {"type": "conv", "kernel_size": 3}), "input": (1, 784)},
}


def build(spec, device):
    name, c_in, classes, overrides = spec
    torch.manual_seed(0)
    return create(name, c_in, classes, **overrides).to(device)


def aten_ops(step) -> int:
    from torch.profiler import ProfilerActivity, profile
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def host_reads(model, x) -> int:
    """Device-to-host reads in one forward."""
    if x.device.type == "cuda":
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                model(x)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)
    count = 0
    originals = {}
    for name in ("tolist", "item", "__bool__", "__int__", "__float__"):
        originals[name] = getattr(torch.Tensor, name)

        def counted(t, *args, _f=originals[name], **kwargs):
            nonlocal count
            count += 1
            return _f(t, *args, **kwargs)

        setattr(torch.Tensor, name, counted)
    try:
        model(x)
    finally:
        for name, f in originals.items():
            setattr(torch.Tensor, name, f)
    return count


def main():
    args = parse_args(__doc__.splitlines()[0])
    cpu = args.device == "cpu"
    settings = {"batch": {"flexnet-16": 64, "flextcn-6": 8 if cpu else 64}, "repeats": 3 if args.quick else 5,
                "models": {k: {"flex": v["model"][0], "flex_overrides": v["model"][3], "plain": v["plain"][0],
                               "plain_overrides": v["plain"][3]} for k, v in CASES.items()},
                "ops": "aten events of torch.profiler over one forward + backward, nested ones included"}
    rows = []
    for case, spec in CASES.items():
        batch = settings["batch"][case]
        x = torch.randn(batch, *spec["input"], device=args.device)
        y = torch.randint(0, 10, (batch,), device=args.device)
        flex, plain = build(spec["model"], args.device), build(spec["plain"], args.device)
        per_layer = build(spec["model"], args.device)
        per_layer.batch_kernels = False
        name, c_in, classes, overrides = spec["model"]
        auto = build((name, c_in, classes, {**overrides, "conv_mode": "auto"}), args.device)
        steps = {"plain": train_step(plain, x, y), "batched": train_step(flex, x, y),
                 "per_layer": train_step(per_layer, x, y), "auto": train_step(auto, x, y)}
        ops = {name: aten_ops(step) for name, step in steps.items()}
        reads = {"batched": host_reads(flex, x), "per_layer": host_reads(per_layer, x)}
        t = time_interleaved(steps, settings["repeats"], device=args.device)
        rows.append({"case": case, "batch": batch, "ops_plain": ops["plain"], "ops_batched": ops["batched"],
                     "ops_per_layer": ops["per_layer"], "ops_ratio": ops["batched"] / ops["plain"],
                     "ops_ratio_per_layer": ops["per_layer"] / ops["plain"],
                     "host_reads_batched": reads["batched"], "host_reads_per_layer": reads["per_layer"],
                     "step_plain_ms": t["plain"] * 1e3, "step_ratio": t["batched"] / t["plain"],
                     "step_ratio_per_layer": t["per_layer"] / t["plain"],
                     "batched_speedup": t["per_layer"] / t["batched"], "ops_auto": ops["auto"],
                     "ops_ratio_auto": ops["auto"] / ops["plain"], "step_ratio_auto": t["auto"] / t["plain"],
                     "auto_fft_layers": sum(getattr(m, "last_conv_mode", None) == "fft" for m in auto.modules())})
        print(rows[-1], flush=True)
    table(rows, ["case", "batch", "ops_plain", "ops_batched", "ops_per_layer", "ops_ratio", "host_reads_batched",
                 "host_reads_per_layer", "step_plain_ms", "step_ratio", "step_ratio_per_layer", "ops_ratio_auto",
                 "step_ratio_auto", "auto_fft_layers"])
    summary = {"target_ops_ratio": 3.0, "target_host_reads": 1,
               **{f"{r['case']}_ops_ratio": r["ops_ratio"] for r in rows},
               **{f"{r['case']}_host_reads": r["host_reads_batched"] for r in rows},
               **{f"{r['case']}_step_ratio": r["step_ratio"] for r in rows}}
    print(summary)
    save("ops", args, settings, rows, summary)


if __name__ == "__main__":
    main()
