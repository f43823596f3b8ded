"""What torch.compile buys: a training step (forward, cross-entropy, backward) of FlexNet-16 and of its discrete
3×3 twin ("w/ conv. (k = 3)"), compiled against eager, all four timed interleaved in one run.

Per model: the first compiled step's time (compilation included) and dynamo's own compile seconds; the steady step
compiled and eager and their ratio; for FlexNet-16 also the recompile when one layer's crop outgrows its compiled
box (flexlib.layers.crops: the step after a mask's σ is raised) and the bound on crop configurations
(flexlib.layers.fused.model_recompile_bound); and that the first compiled step equals the eager one (loss, relative;
gradients, relative to the largest). Models as `create` builds them (conv_mode "auto"), FlexNet-16 with the authors'
σ = 0.075, without dropout (eager and compiled code draw different random numbers); 32×32 inputs, batch 8 on CPU
(64 on CUDA). Compiled in place (`model.compile()`, torch.compile's defaults: inductor). Without --quick, also
FlexNet-16's first step in float64, compiled against eager.
"""
from __future__ import annotations

import os
import tempfile
import time

import torch

from common import parse_args, save, table, train_step
from flexlib import FlexConv
from flexlib.engine.distributed import compile_stats
from flexlib.layers.fused import model_recompile_bound
from flexlib.models import create
from flexlib.paper.timing import time_interleaved

MODELS = {"flexnet-16": {"mask_init": "official", "dropout": 0.0}, "flexnet-16-conv3": {"dropout": 0.0}}


def _build(name, device):
    torch.manual_seed(0)
    return create(name, 3, 10, **MODELS[name]).to(device)


def _timed_once(step, device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _loss_and_grads(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


def main():
    args = parse_args(__doc__.splitlines()[0], threads=1)
    # a new user's first compile: inductor's on-disk caches (which make a later process compile the same graphs in a
    # fraction of the time) start empty
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-compile-")
    batch = 8 if args.device == "cpu" else 64
    settings = {"batch": batch, "input": [3, 32, 32], "models": MODELS, "repeats": 3 if args.quick else 7,
                "compile": "model.compile() (torch.compile defaults: inductor, dynamic=None)",
                "inductor_cache": "an empty TORCHINDUCTOR_CACHE_DIR: cold compiles",
                "torch": torch.__version__}
    x = torch.randn(batch, 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (batch,), device=args.device)
    steps, rows = {}, {}
    for name in MODELS:
        eager, compiled = _build(name, args.device), _build(name, args.device)
        compiled.compile()
        steps[f"{name} eager"] = train_step(eager, x, y)
        steps[f"{name} compiled"] = train_step(compiled, x, y)
        before = compile_stats()
        first = _timed_once(steps[f"{name} compiled"], args.device)
        stats = compile_stats(before)
        (le, ge), (lc, gc) = _loss_and_grads(eager, x, y), _loss_and_grads(compiled, x, y)
        largest = max(g.abs().max() for g in ge)
        rows[name] = {"model": name, "first_compiled_step_s": first, "dynamo_compile_s": stats["compile_seconds"],
                      "graphs": stats["compiled_graphs"], "loss_rel_diff": ((lc - le).abs() / le.abs()).item(),
                      "grad_diff_of_largest": (max((a - b).abs().max() for a, b in zip(gc, ge)) / largest).item()}
        print(rows[name], flush=True)
        if name == "flexnet-16":
            rows[name]["crop_configuration_bound"] = model_recompile_bound(compiled, (32, 32))
            rows[name]["_model"] = compiled
    t = time_interleaved(steps, settings["repeats"], device=args.device)
    for name, row in rows.items():
        row.update({"eager_ms": t[f"{name} eager"] * 1e3, "compiled_ms": t[f"{name} compiled"] * 1e3,
                    "compiled_over_eager": t[f"{name} compiled"] / t[f"{name} eager"]})
    flex = rows["flexnet-16"]
    model = flex.pop("_model")
    conv = [m for m in model.modules() if isinstance(m, FlexConv)][3]
    with torch.no_grad():                          # one crop outgrows its box: 5×5 → 13×13 at 32 px
        conv.mask.sigma_param.fill_(0.18)
    before = compile_stats()
    flex["recompile_step_s"] = _timed_once(steps["flexnet-16 compiled"], args.device)
    flex["recompile_dynamo_s"] = compile_stats(before)["compile_seconds"]
    if not args.quick:   # float32 gradients of FlexNet-16 are only good to ~3e-4 of the largest, eager's too: in
        torch.manual_seed(0)   # float64 the compiled step is the eager one to rounding
        eager = create("flexnet-16", 3, 10, **MODELS["flexnet-16"]).to(args.device, torch.float64)
        compiled = create("flexnet-16", 3, 10, **MODELS["flexnet-16"]).to(args.device, torch.float64)
        compiled.load_state_dict(eager.state_dict())
        compiled.compile()
        (le, ge), (lc, gc) = _loss_and_grads(eager, x.double(), y), _loss_and_grads(compiled, x.double(), y)
        flex["float64_loss_rel_diff"] = ((lc - le).abs() / le.abs()).item()
        flex["float64_grad_diff_of_largest"] = (max((a - b).abs().max() for a, b in zip(gc, ge))
                                                / max(g.abs().max() for g in ge)).item()
    rows = list(rows.values())
    table(rows, ["model", "first_compiled_step_s", "dynamo_compile_s", "graphs", "eager_ms", "compiled_ms",
                 "compiled_over_eager", "loss_rel_diff", "grad_diff_of_largest"])
    summary = {"flexnet16_compiled_over_eager": flex["compiled_over_eager"],
               "conv3_compiled_over_eager": rows[1]["compiled_over_eager"],
               "flexnet16_over_conv3_eager": flex["eager_ms"] / rows[1]["eager_ms"],
               "flexnet16_over_conv3_compiled": flex["compiled_ms"] / rows[1]["compiled_ms"],
               "flexnet16_compile_s": flex["dynamo_compile_s"], "conv3_compile_s": rows[1]["dynamo_compile_s"],
               "flexnet16_recompile_s": flex["recompile_dynamo_s"],
               "flexnet16_crop_configuration_bound": flex["crop_configuration_bound"],
               "flexnet16_loss_rel_diff": flex["loss_rel_diff"],
               "flexnet16_grad_diff_of_largest": flex["grad_diff_of_largest"],
               "flexnet16_float64_grad_diff_of_largest": flex.get("float64_grad_diff_of_largest"),
               "steps_to_repay_flexnet16_compile": (flex["dynamo_compile_s"] / ((flex["eager_ms"] - flex["compiled_ms"])
                                                    / 1e3) if flex["compiled_ms"] < flex["eager_ms"] else None)}
    print(summary)
    save("compile", args, settings, rows, summary)


if __name__ == "__main__":
    main()
