"""Draw results/benchmarks/benchmarks.png from the JSON files the benchmark scripts wrote."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common import RESULTS  # noqa: E402


def load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main():
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.5))
    layer = load("layer")
    if layer:
        ax = axes[0]
        rows = layer["rows"]
        labels = [r["case"] for r in rows]
        xs = range(len(rows))
        for i, (key, name) in enumerate([("train_ratio", "train step"), ("eval_live_ratio", "eval, live kernel"),
                                         ("eval_frozen_ratio", "eval, frozen kernel"),
                                         ("eval_baked_ratio", "eval, baked")]):
            ax.bar([x + 0.2 * i for x in xs], [r[key] for r in rows], width=0.2, label=name)
        ax.axhline(1.25, color="k", ls="--", lw=0.8)
        ax.axhline(1.05, color="gray", ls=":", lw=0.8)
        ax.set_xticks([x + 0.3 for x in xs], labels, rotation=45, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("time / nn.ConvNd (same kernel size)")
        ax.set_title("FlexConv vs nn.ConvNd (targets 1.25x train, 1.05x eval)")
        ax.legend(fontsize=7)
    fft = load("fft_vs_spatial")
    if fft:
        ax = axes[1]
        for dim, style in ((1, "-"), (2, "--")):
            rows = [r for r in fft["rows"] if r["dim"] == dim]
            ks = [r["kernel"] for r in rows]
            ax.plot(ks, [r["spatial_ms"] for r in rows], "o" + style, color="C0", label=f"{dim}D spatial")
            ax.plot(ks, [r["fft_ms"] for r in rows], "s" + style, color="C1", label=f"{dim}D FFT")
            auto = [r["fft_ms"] if r["auto"] == "fft" else r["spatial_ms"] for r in rows]
            ax.plot(ks, auto, "x", color="k", ms=10, label=f"{dim}D auto choice" if dim == 1 else None)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("kernel size")
        ax.set_ylabel("ms (fwd + bwd)")
        ax.set_title("spatial vs FFT, and the automatic choice")
        ax.legend(fontsize=7)
    choice = load("path_choice")
    if choice:
        ax = axes[2]
        ratios = sorted(r["auto_over_best"] for r in choice["rows"])
        ax.plot(range(len(ratios)), ratios, "o", ms=3, color="k")
        ax.axhline(1.10, color="C3", ls="--", lw=0.8, label="target 1.10")
        ax.axhline(1.25, color="gray", ls=":", lw=0.8, label="named exceptions up to 1.25")
        ax.set_xlabel("sweep point (sorted)")
        ax.set_ylabel("auto / faster path (fwd + bwd)")
        s = choice["summary"]
        ax.set_title(f"path choice over {s['points']} shapes: worst {s['worst_auto_over_best']:.2f}x, "
                     f"median {s['median_auto_over_best']:.2f}x", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[3]
    bars = {}
    ops = load("ops")
    if ops:
        for r in ops["rows"]:
            bars[f"{r['case']} ops\n/ 3-tap twin"] = r["ops_ratio"]
    crop = load("cropping")
    if crop:
        for r in crop["rows"]:
            bars[f"cropping speedup\n({r['mask_init']} init)"] = r["speedup"]
    res = load("resolution")
    if res:
        bars["32x32 / 16x16\nstep time"] = 1.0 / (1.0 - res["summary"]["saving"])
    kg = load("kernel_generation")
    if kg:
        bars["kernel gen. share\nof FlexNet step (x10)"] = 10 * kg["summary"]["flexnet16_kernel_share"]
    ax.bar(range(len(bars)), list(bars.values()), color="C2")
    ax.set_xticks(range(len(bars)), list(bars), fontsize=8)
    for i, v in enumerate(bars.values()):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_title("FlexNet-16: cropping, resolution, kernel generation")
    meta = (layer or fft or crop or {}).get("metadata", {})
    fig.suptitle(f"flexlib benchmarks — {meta.get('device', '?')}, {meta.get('threads', '?')} threads, torch "
                 f"{meta.get('torch', '?')}, {meta.get('date', '?')}, commit {str(meta.get('git_commit', '?'))[:8]}",
                 fontsize=9)
    fig.tight_layout()
    path = RESULTS / "benchmarks.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
