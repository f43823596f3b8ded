"""Is `auto` within 10 % of the faster of the spatial and FFT paths on the shapes users
run? (For 1-D and 2-D on CPU `auto` is the cost model flexlib.layers.path_choice.prefer_fft; in 3-D and on a GPU it times
both paths; the `cost_model` columns show how the model alone would have chosen.)

A stratified sample of the space: every combination of data_dim, input size, causal (1-D) and crop (3 … the full
kernel) gets a random batch (1–64) and channel count (8–128; C_in = C_out) from a fixed seed, redrawn smaller if
the faster path would take more than ~0.5 s on this CPU; plus the layers of the paper's models (FlexNet-16's
widths on 32×32, FlexTCN's 30 channels on 784/1024 steps) at batch 64 (validation) or 32 (fitting); the fitting
sweep adds short 1-D signals (64–256 steps, crops 5–17) at batch 64 with 32 and 64 channels. Each point
times a training step of the functional convolution (forward + backward, input and kernel requiring grad), both
paths interleaved (median of 3 after a warm-up) when their first timed runs are within 3× of each other or under
50 ms; otherwise those runs decide (a run over 1 s is its own warm-up), and a path estimated at over 3 s and 20×
the other's measured time is not run (`auto` must then pick the other).

    python benchmarks/bench_path_choice.py            # the validation sweep (seed 0) → path_choice.json
    python benchmarks/bench_path_choice.py --fit      # a fitting sweep (seed 1) → path_choice_fit.json, and the
                                                      # coefficients of flexlib.layers.path_choice printed
    python benchmarks/bench_path_choice.py --refit    # the constants again from the saved fitting sweep
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
import sys
import time

import torch

from common import RESULTS, parse_args, save
from flexlib.paper.timing import time_interleaved
from flexlib.layers.conv import conv_nd, fft_conv_nd, fft_lengths
from flexlib.layers.path_choice import FFTTerms, SpatialTerms, path_terms, prefer_fft, uses_fft
from flexlib.layers.grids import kernel_size_for

SPACE = {
    1: {"sizes": [64, 256, 1024, 4096, 16000], "crops": [3, 9, 33, 129, 513, 2049, "full"]},
    2: {"sizes": [16, 32, 64, 128], "crops": [3, 5, 9, 17, 33, 65, "full"]},
    3: {"sizes": [8, 16, 24], "crops": [3, 5, 9, "full"]},
}
BATCHES = [1, 2, 4, 8, 16, 32, 64]
CHANNELS = [8, 16, 24, 32, 48, 64, 96, 128]
FAST_CAP_S = 0.5     # redraw a smaller batch/width while the faster path's estimated step exceeds this
SKIP_S = 3.0         # the slower path is not run when estimated above this and 20× the faster's measured time


def estimate(b, c, n, k, causal) -> dict[str, float]:
    """Crude seconds of a training step per path (this CPU, 1 thread), only to bound the sweep's runtime."""
    m = math.prod(fft_lengths(n, k, causal))
    spatial = 3e-10 * b * c * c * math.prod(n) * math.prod(k) + 1e-4
    fft = 2e-9 * (2 * b * c + c * c) * m * max(math.log2(m), 1.0) + 2e-10 * b * c * c * m + 3e-4
    return {"spatial": spatial, "fft": fft}


def points(seed: int, per_combo: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for dim, space in SPACE.items():
        for size in space["sizes"]:
            full = kernel_size_for(size)
            crops = sorted({min(full, c) if c != "full" else full for c in space["crops"]})
            for crop in crops:
                for causal in ((False, True) if dim == 1 else (False,)):
                    for _ in range(per_combo * (3 if dim == 3 and seed == 1 else 1)):  # 3-D combos are few
                        combos = [(b, c) for b in BATCHES for c in CHANNELS]
                        rng.shuffle(combos)
                        fast = lambda bc: min(estimate(*bc, (size,) * dim, (crop,) * dim, causal).values())
                        b, c = next((bc for bc in combos if fast(bc) <= FAST_CAP_S), (1, 8))
                        out.append({"dim": dim, "batch": b, "channels": c, "size": size, "crop": crop,
                                    "causal": causal})
    batch = 64 if seed == 0 else 32                  # the layers of the paper's models, at full batch when validating
    for c in ((24, 36, 48) if seed == 0 else (24, 48)):
        for crop in ((3, 5, 9, 17, 33) if seed == 0 else (5, 17, 33)):
            out.append({"dim": 2, "batch": batch, "channels": c, "size": 32, "crop": crop, "causal": False})
    for size in ((784, 1024) if seed == 0 else (784,)):
        for crop in ((17, 65, 257, size) if seed == 0 else (9, 33, 129, size)):
            out.append({"dim": 1, "batch": batch, "channels": 30, "size": size, "crop": crop, "causal": True})
    if seed == 1:        # short 1-D signals at batch 64, where the two paths are close and the random draw is thin
        for size in (64, 128, 256):
            for crop in (5, 9, 17):
                for causal in (False, True):
                    for c in (32, 64):
                        out.append({"dim": 1, "batch": 64, "channels": c, "size": size, "crop": crop, "causal": causal})
    return out


def timed(fn, device) -> float:
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def measure(p: dict, repeats: int, device, measured_auto: bool = True) -> dict:
    dim, b, c, causal = p["dim"], p["batch"], p["channels"], p["causal"]
    n, k = (p["size"],) * dim, (p["crop"],) * dim
    torch.manual_seed(0)
    x = torch.randn(b, c, *n, device=device, requires_grad=True)
    w = (torch.randn(c, c, *k, device=device) / math.sqrt(c * math.prod(k))).requires_grad_()

    def step(conv):
        def run():
            x.grad = w.grad = None
            conv(x, w, None, causal).sum().backward()
        return run

    fns = {"spatial": step(conv_nd), "fft": step(fft_conv_nd)}
    est = estimate(b, c, n, k, causal)
    fast, slow = sorted(fns, key=est.get)
    fns[fast]()
    t = {fast: timed(fns[fast], device)}
    skipped = None
    if est[slow] > max(20 * t[fast], SKIP_S):
        skipped, t[slow] = slow, math.inf
    else:
        t[slow] = timed(fns[slow], device)                           # its warm-up, timed: if short, one-time
        if t[slow] < 1.0:                                            # costs (oneDNN primitives) may dominate it
            t[slow] = timed(fns[slow], device)
        if max(t.values()) < max(3 * min(t.values()), 0.05):        # close or short: interleaved repeats decide
            t = time_interleaved(fns, repeats, warmup=0, device=device, budget_s=0)
    model = "fft" if prefer_fft(b, c, c, n, k, causal) else "spatial"              # the CPU-fitted cost model
    # auto in 3-D and on a GPU: measured (the fitting sweep, which fits the timings, not auto, skips that)
    auto = ("fft" if uses_fft("auto", x, w, None, causal) else "spatial") if measured_auto else model
    best = min(t.values())
    return {**p, "spatial_ms": t["spatial"] * 1e3, "fft_ms": t["fft"] * 1e3, "skipped": skipped, "auto": auto,
            "faster": min(t, key=t.get), "auto_over_best": t[auto] / best, "cost_model": model,
            "cost_model_over_best": t[model] / best}


def fit(rows: list[dict]) -> dict:
    """The coefficients of flexlib.layers.path_choice.CPU_TRAINING_STEP: positive coefficients of `path_terms` whose predicted
    log(t_fft / t_spatial) fits the measured one (robust soft-L1 loss; an unrun path's point only asks for the
    right sign with 20× margin), best of 30 random starts, the FFT's channel contraction (a batched matmul) held
    to at least the cost of the direct 2-D multiply-adds it replaces (the sweep's batches are small, so it barely
    constrains that term, which dominates at batch 64); then scaled so that the predicted spatial 2-D times
    match the measured ones (median)."""
    import numpy as np
    from scipy.optimize import least_squares

    def terms(r, path):
        spatial, fft = path_terms(r["batch"], r["channels"], r["channels"], (r["size"],) * r["dim"],
                                  (r["crop"],) * r["dim"], r["causal"])
        return dataclasses.astuple(spatial if path == "spatial" else fft)

    sp = np.array([terms(r, "spatial") for r in rows], dtype=float)
    ff = np.array([terms(r, "fft") for r in rows], dtype=float)
    ratio = np.array([math.log(max(min(r["fft_ms"] / r["spatial_ms"], 20.0), 1 / 20)) for r in rows])
    bound = np.array([-1 if math.isinf(r["spatial_ms"]) else 1 if math.isinf(r["fft_ms"]) else 0 for r in rows])

    def coefficients(p):
        a, c = np.exp(p[:sp.shape[1]]), np.exp(p[sp.shape[1]:])
        c[2] += 2 * a[1]        # the contraction's 2 real multiply-adds per unit cost at least a 2-D direct one's
        return a, c

    def residuals(p):
        a, c = coefficients(p)
        r = np.log(ff @ c) - np.log(sp @ a) - ratio
        return np.where(((bound == -1) & (r < 0)) | ((bound == 1) & (r > 0)), 0.0, r)

    rng = np.random.default_rng(0)
    best = min((least_squares(residuals, rng.normal(-22, 4, sp.shape[1] + ff.shape[1]), loss="soft_l1",
                              f_scale=0.3) for _ in range(30)), key=lambda sol: sol.cost)
    a, c = coefficients(best.x)
    two_d = [(row, r) for row, r in zip(sp, rows) if r["dim"] == 2 and math.isfinite(r["spatial_ms"])]
    scale = np.median([r["spatial_ms"] * 1e-3 / (row @ a) for row, r in two_d])
    predicted = np.log(ff @ c) - np.log(sp @ a)
    wrong = [r for p, r in zip(predicted, rows)
             if (p < 0) != (r["fft_ms"] < r["spatial_ms"]) and max(r["fft_ms"], r["spatial_ms"]) / min(
                 r["fft_ms"], r["spatial_ms"]) > 1.10]
    names = {"spatial": [f.name for f in dataclasses.fields(SpatialTerms)],
             "fft": [f.name for f in dataclasses.fields(FFTTerms)]}
    return {"spatial": {n: float(f"{v:.4g}") for n, v in zip(names["spatial"], a * scale)},
            "fft": {n: float(f"{v:.4g}") for n, v in zip(names["fft"], c * scale)},
            "in_sample_points_off_by_over_10pct": len(wrong), "robust_cost": float(best.cost)}


def main():
    fitting, refit = "--fit" in sys.argv, "--refit" in sys.argv
    sys.argv = [a for a in sys.argv if a not in ("--fit", "--refit")]
    if refit:                                   # fit again the sweep that --fit saved, without measuring
        path = RESULTS / "path_choice_fit.json"
        saved = json.loads(path.read_text())
        saved["summary"]["fit"] = fit(saved["rows"])
        path.write_text(json.dumps(saved, indent=1) + "\n")
        print(saved["summary"]["fit"])
        return
    args = parse_args(__doc__.splitlines()[0], threads=1)
    seed = 1 if fitting else 0
    sample = points(seed, per_combo=2 if fitting else 1)
    if args.quick:
        sample = sample[::6]
    settings = {"seed": seed, "points": len(sample), "space": SPACE, "batches": BATCHES, "channels": CHANNELS,
                "fast_cap_s": FAST_CAP_S, "skip_s": SKIP_S, "repeats": 3,
                "timed": "forward + backward of the functional convolution, input and kernel requiring grad"}
    rows = []
    start = time.perf_counter()
    for i, p in enumerate(sample):
        rows.append(measure(p, settings["repeats"], args.device, measured_auto=not fitting))
        r = rows[-1]
        print(f"[{i + 1}/{len(sample)} {time.perf_counter() - start:.0f}s] {r['dim']}d b{r['batch']} c{r['channels']} "
              f"n{r['size']} k{r['crop']}{' causal' if r['causal'] else ''}: spatial {r['spatial_ms']:.1f} ms, "
              f"fft {r['fft_ms']:.1f} ms, auto {r['auto']} → {r['auto_over_best']:.2f}x", flush=True)
    ratios = [r["auto_over_best"] for r in rows]
    worst = max(rows, key=lambda r: r["auto_over_best"])
    name = lambda r: (f"{r['dim']}d b{r['batch']} c{r['channels']} n{r['size']} k{r['crop']}"
                      f"{' causal' if r['causal'] else ''}")
    summary = {"target_auto_over_best": 1.10, "limit_for_named_exceptions": 1.25,
               "worst_auto_over_best": worst["auto_over_best"], "worst_case": name(worst),
               "median_auto_over_best": statistics.median(ratios),
               "points_within_target": sum(x <= 1.10 for x in ratios), "points": len(rows),
               "exceptions": {name(r): round(r["auto_over_best"], 3) for r in rows if r["auto_over_best"] > 1.10},
               "cost_model_worst": max(r["cost_model_over_best"] for r in rows),
               "cost_model_points_within_target": sum(r["cost_model_over_best"] <= 1.10 for r in rows),
               "sweep_seconds": round(time.perf_counter() - start)}
    if fitting:
        summary["fit"] = fit(rows)
    print(summary)
    save("path_choice_fit" if fitting else "path_choice_quick" if args.quick else "path_choice", args, settings,
         rows, summary)


if __name__ == "__main__":
    main()
