"""The experiment engine: App. D.2 optimization, learning on offline data, exact resume, DDP, clear errors."""
import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from flexlib import FlexConv
from flexlib.__main__ import main
from flexlib.data import build
from flexlib.engine.checkpoint import load
from flexlib.engine.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, ResolutionConfig, TrainConfig
from flexlib.engine import NonFiniteLossError, build_optimizer, build_scheduler, run_experiment
from flexlib.engine.run import CHECKPOINT

torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")


def seq_config(tmp_path, epochs=3, **train):
    return ExperimentConfig(
        data=DataConfig("char_trajectories", offline=True),
        model=ModelConfig("flextcn-2", {"width": 8, "conv_mode": "fft"}),
        optim=OptimConfig(lr=0.01, warmup_epochs=1),
        train=TrainConfig(epochs=epochs, batch_size=32, out_dir=str(tmp_path), **train))


def test_flextcn_learns_the_offline_sequence_task_via_cli(tmp_path, capsys):
    params = tmp_path / "ct.yaml"
    params.write_text("full:\n  data: {dataset: char_trajectories}\n  model: {name: flextcn-2}\n"
                      "quick:\n  data: {offline: true}\n  model: {kwargs: {width: 8, conv_mode: fft}}\n"
                      "  optim: {warmup_epochs: 1}\n  train: {epochs: 4, batch_size: 32}\n")
    assert main(["train", str(params), "--profile", "quick", "--run-dir", str(tmp_path / "run")]) == 0
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rows[-1]["test_acc"] > 3 / 9                              # 9 classes: chance is 1/9
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert "JapaneseVowels" in meta["dataset"] and "stand-in for CharacterTrajectories" in meta["dataset"]
    assert meta["torch"] == torch.__version__ and meta["seed"] == 0 and "git_commit" in meta
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "blocks.0.conv1.mu[0]" in header and "blocks.0.conv1.sigma[0]" in header and "lr" in header


def test_flexnet_learns_the_offline_image_task(tmp_path):
    cfg = ExperimentConfig(
        data=DataConfig("cifar10", offline=True, resolution=16, train_size=320, test_size=200),
        model=ModelConfig("flexnet-3", {"width": 4, "mask_init": "official"}),
        optim=OptimConfig(lr=0.01, warmup_epochs=1), train=TrainConfig(epochs=3, batch_size=32, out_dir=str(tmp_path)))
    result = run_experiment(cfg, "img")
    assert result.final["test_acc"] > 0.2                           # 10 classes: chance is 0.1


def test_resume_after_a_kill_matches_the_uninterrupted_run(tmp_path):
    full = run_experiment(seq_config(tmp_path / "a"), "full")
    cut = run_experiment(seq_config(tmp_path / "b"), "cut", stop_after_epochs=1)
    assert not cut.finished and len(cut.history) == 1
    resumed = run_experiment(seq_config(tmp_path / "b"), run_dir=cut.run_dir, resume=True)
    assert resumed.finished
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(resumed.history) == strip(full.history)
    assert json.loads((cut.run_dir / "metrics.json").read_text())[-1]["test_acc"] == full.final["test_acc"]


def test_mask_parameters_train_at_a_tenth_of_the_learning_rate():
    model = nn.Sequential(FlexConv(2, 4, 1), FlexConv(4, 4, 1))
    opt = build_optimizer(model, OptimConfig(lr=0.02))
    mask_ids = {id(p) for conv in model for p in conv.mask.parameters()}
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_lr[0.002] == mask_ids and not by_lr[0.02] & mask_ids
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sched = build_scheduler(opt, OptimConfig(lr=0.02, warmup_epochs=1), epochs=4, steps_per_epoch=3)
    for _ in range(5):
        opt.step()
        sched.step()
        assert math.isclose(opt.param_groups[1]["lr"], 0.1 * opt.param_groups[0]["lr"])


@pytest.mark.parametrize("warmup", [0, 2, 5])
def test_warmup_then_cosine_matches_the_closed_form(warmup):
    lr, epochs, spe = 0.01, 12, 7
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(opt, OptimConfig(lr=lr, warmup_epochs=warmup), epochs, spe)
    w, total = warmup * spe, epochs * spe

    def expected(s):
        if s < w:
            return lr * (1 / w + (1 - 1 / w) * s / w)
        return lr / 2 * (1 + math.cos(math.pi * (s - w) / (total - w)))
    for step in range(total):
        if step % spe == 0:                                          # the start of every epoch
            assert math.isclose(opt.param_groups[0]["lr"], expected(step), rel_tol=1e-9, abs_tol=1e-12), step
        opt.step()
        sched.step()
    if warmup:
        assert math.isclose(expected(w), lr)


@pytest.mark.parametrize("warmup", [0, 3])
def test_warmup_then_constant_holds_the_learning_rate_after_the_warmup(warmup):
    lr, epochs, spe = 0.01, 6, 5
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr)
    sched = build_scheduler(opt, OptimConfig(lr=lr, warmup_epochs=warmup, schedule="warmup_constant"), epochs, spe)
    w = warmup * spe
    for step in range(epochs * spe + 10):                           # past the nominal end: still lr
        expected = lr * (1 / w + (1 - 1 / w) * step / w) if step < w else lr
        assert math.isclose(opt.param_groups[0]["lr"], expected, rel_tol=1e-9), step
        opt.step()
        sched.step()


class NaNAfter(nn.Module):
    """A small classifier whose output turns NaN at the n-th training forward pass."""

    def __init__(self, channels, classes, n):
        super().__init__()
        self.linear, self.calls, self.n = nn.Linear(channels, classes), 0, n

    def forward(self, x):
        self.calls += self.training
        out = self.linear(x[..., -1])
        return out * float("nan") if self.training and self.calls > self.n else out


def test_non_finite_loss_names_epoch_and_step_and_keeps_the_checkpoint(tmp_path):
    cfg = seq_config(tmp_path, epochs=3)
    steps = len(build(cfg.data).train) // cfg.train.batch_size        # drop_last: whole batches only
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3.*checkpoint of epoch 1 .* is kept"):
        run_experiment(cfg, "nan", run_dir=tmp_path / "run",
                       model_fn=lambda c, d: NaNAfter(d.in_channels, d.num_classes, n=steps + 3))
    state = load(tmp_path / "run" / CHECKPOINT)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_cli_reports_config_and_data_errors(tmp_path, capsys):
    params = tmp_path / "x.yaml"
    params.write_text("full:\n  data: {dataset: cifar10, root: " + str(tmp_path) + "}\n  model: {name: flexnet-3}\n")
    assert main(["train", str(params), "--set", "train.epochz=2"]) == 2
    assert "unknown key 'epochz'; did you mean 'epochs'?" in capsys.readouterr().err
    assert main(["train", str(params), "--set", f"train.out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "runs").exists()                           # a run that cannot start leaves no folder
    assert "dataset 'cifar10' not found" in err and "data.download=true" in err


def test_resolution_change_trains_retargets_and_finetunes(tmp_path):
    cfg = ExperimentConfig(
        data=DataConfig("cifar10", offline=True, train_size=64, test_size=64),
        model=ModelConfig("flexnet-3", {"width": 4, "mask_init": "official"}),
        optim=OptimConfig(warmup_epochs=0),
        train=TrainConfig(epochs=1, batch_size=32, alias_lambda=0.1, out_dir=str(tmp_path)),
        resolution=ResolutionConfig(source=8, target=16, finetune_epochs=1))
    rows = run_experiment(cfg, "res").history
    assert [(r["stage"], r["resolution"]) for r in rows] == [("train", 8), ("target-before-finetune", 16),
                                                             ("finetune", 16)]
    assert all(math.isfinite(r["test_loss"]) for r in rows)
    assert rows[0]["train_objective"] > rows[0]["train_loss"]          # λ L_HF is in the objective, not the CE
    from flexlib.layers.alias import magnet_max_frequency
    from flexlib.engine import load_model
    convs = [m for m in load_model(run_experiment(cfg, "res2", stop_after_epochs=1).run_dir).modules()
             if isinstance(m, FlexConv)]
    expected = sum(float(magnet_max_frequency(c.kernel_net).detach()) for c in convs) / len(convs)
    assert rows[0]["f_magnet_mean"] == pytest.approx(expected, rel=1e-6)   # eq. 21 per epoch, over the layers


# --- DDP: two gloo processes on one batch give the single-process gradient ------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_model():
    from flexlib.models import create
    torch.manual_seed(0)
    return create("flextcn-2", 3, 5, width=4, norm="layer", dropout=0.0, conv_mode="fft")


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 20, generator=g), torch.randint(0, 5, (8,), generator=g)


def _ddp_worker(rank, port, out, compiled=False):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from flexlib.engine import distributed
    from flexlib.engine import training_objective
    info = distributed.setup("cpu")
    model = _tiny_model()
    if compiled:   # as train.compile does: in place, before the wrap (dynamo + AOTAutograd here, for time)
        model.compile(backend="aot_eager", dynamic=False)
    model = distributed.wrap(model, info, torch.device("cpu"))
    x, y = _batch()
    shard = slice(rank * 4, (rank + 1) * 4)
    loss, _, _ = training_objective(model, x[shard], y[shard], alias_lambda=0.1)
    loss.backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in distributed.unwrap(model).named_parameters()}, out)
    distributed.cleanup()


@pytest.mark.parametrize("compiled", [False, True])
def test_two_process_ddp_gradient_equals_the_single_process_gradient(tmp_path, compiled):
    from flexlib.engine import training_objective
    out = tmp_path / "grads.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(out), compiled), nprocs=2, join=True)
    model = _tiny_model()
    x, y = _batch()
    loss, _, _ = training_objective(model, x, y, alias_lambda=0.1)
    loss.backward()
    ddp = torch.load(out)
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_load_model_and_initial_model_give_the_run_s_weights(tmp_path):
    from flexlib.engine import initial_model, load_model
    cfg = seq_config(tmp_path, epochs=1)
    start = initial_model(cfg)
    result = run_experiment(cfg, "snap")
    loaded = load_model(result.run_dir)
    saved = load(result.run_dir / CHECKPOINT)["model"]
    same = lambda a, b: torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
    assert all(same(loaded.state_dict()[k], v) for k, v in saved.items())
    changed = [k for k, v in start.state_dict().items()
               if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.equal(v, saved[k])]
    assert changed, "one epoch of training should change the initial weights"
    assert result.metadata["num_classes"] == 9 and result.metadata["in_channels"] == 12


def test_a_model_without_flexconvs_is_tested_at_the_target_resolution_as_it_is(tmp_path):
    cfg = ExperimentConfig(
        data=DataConfig("cifar10", offline=True, train_size=64, test_size=32),
        model=ModelConfig("flexnet-3", {"width": 4, "type": "conv", "kernel_size": 3}),
        optim=OptimConfig(warmup_epochs=0), train=TrainConfig(epochs=1, batch_size=32, out_dir=str(tmp_path)),
        resolution=ResolutionConfig(source=16, target=32, finetune_epochs=1))
    result = run_experiment(cfg, "discrete")
    assert [h["stage"] for h in result.history] == ["train", "target-before-finetune", "finetune"]


# --- the official code's weight decay (optim.weight_decay_form: kernel_norm) and top-5 accuracy --------------------

def test_kernel_norm_penalty_is_the_sum_of_unsquared_l2_norms_with_their_gradient():
    from flexlib.engine.step import kernel_norm_penalty
    import numpy as np
    g = torch.Generator().manual_seed(0)
    kernels = [torch.randn(4, 3, 5, generator=g, requires_grad=True), torch.randn(2, 2, 3, 3, generator=g,
                                                                                  requires_grad=True)]
    biases = [torch.randn(4, generator=g, requires_grad=True), torch.zeros(2, requires_grad=True), None]
    value = kernel_norm_penalty(kernels, biases)
    arrays = [t.detach().numpy() for t in kernels + biases[:2]]
    assert math.isclose(value.item(), sum(float(np.sqrt((a.astype(np.float64) ** 2).sum())) for a in arrays),
                        rel_tol=1e-6)
    value.backward()
    for t in kernels + biases[:1]:
        torch.testing.assert_close(t.grad, t.detach() / t.detach().norm())      # d||t||/dt = t / ||t||
    assert torch.equal(biases[1].grad, torch.zeros(2))                          # zero bias at init: finite, 0


def test_kernel_norm_penalty_of_a_model_decays_only_ckconv_and_flexconv_kernels():
    from flexlib import CKConv
    from flexlib.models import NJetConv
    from flexlib.engine.step import model_kernel_norm_penalty
    import numpy as np
    torch.manual_seed(0)
    flex = FlexConv(2, 3, 1, causal=True, grid="official")
    plain, njet, ck = nn.Conv1d(3, 3, 3, padding=1), NJetConv(3, 3, data_dim=1), CKConv(3, 2, 1)
    with torch.no_grad():
        for conv in (flex, ck):
            conv.bias.normal_()
    model = nn.Sequential(flex, plain, njet, ck).double()
    x = torch.randn(2, 2, 10, dtype=torch.float64)                               # even length: the grid matters
    model(x)
    value = model_kernel_norm_penalty(model)
    expected = sum(float(np.linalg.norm(c.kernel_for((10,)).detach().numpy().ravel()))
                   + float(np.linalg.norm(c.bias.detach().numpy())) for c in (flex, ck))
    assert math.isclose(value.item(), expected, rel_tol=1e-12)
    value.backward()
    assert all(p.grad is None for p in [*plain.parameters(), *njet.parameters()])   # no decay outside CK layers
    p = flex.kernel_net.output_linear.weight if hasattr(flex.kernel_net, "output_linear") else \
        next(flex.kernel_net.parameters())
    analytic, h = p.grad.flatten()[0].item(), 1e-6
    numeric = []
    for sign in (1, -1):
        with torch.no_grad():
            p.view(-1)[0] += sign * h
        model(x)
        numeric.append(model_kernel_norm_penalty(model).item())
        with torch.no_grad():
            p.view(-1)[0] -= sign * h
    assert math.isclose(analytic, (numeric[0] - numeric[1]) / (2 * h), rel_tol=1e-5, abs_tol=1e-9)


@pytest.mark.parametrize("form", ["adam", "kernel_norm"])
def test_weight_decay_form_puts_the_decay_in_adam_or_in_the_objective(form):
    from flexlib.engine import training_objective
    from flexlib.engine.step import StepOptions
    from flexlib.engine.run import step_options
    from flexlib.engine.step import model_kernel_norm_penalty
    cfg = ExperimentConfig(DataConfig("smnist"), ModelConfig("flextcn-2"),
                           OptimConfig(weight_decay=0.01, weight_decay_form=form))
    model = _tiny_model()
    assert {g["weight_decay"] for g in build_optimizer(model, cfg.optim).param_groups} == \
        {0.01 if form == "adam" else 0.0}
    opts = step_options(cfg, num_classes=5)
    x, y = _batch()
    loss, ce, _ = training_objective(model, x, y, **opts.objective_kwargs())
    extra = 0.01 * model_kernel_norm_penalty(model).item() if form == "kernel_norm" else 0.0
    assert opts.kernel_weight_decay == (0.01 if form == "kernel_norm" else 0.0)
    assert math.isclose(loss.item() - ce.item(), extra, rel_tol=1e-4, abs_tol=1e-7) and (extra > 0) == (form != "adam")
    assert isinstance(opts, StepOptions)


def test_top5_accuracy_matches_an_independent_count_and_follows_the_classes():
    import numpy as np
    from torch.utils.data import DataLoader, TensorDataset
    from flexlib.engine import distributed
    from flexlib.engine.config import ConfigError
    from flexlib.engine.step import StepOptions, evaluate
    from flexlib.engine.run import step_options
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 4, generator=g), torch.randint(0, 12, (50,), generator=g)
    model = nn.Linear(4, 12)
    out = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=16), torch.device("cpu"), StepOptions(top5=True),
                   distributed.DistInfo())
    top5 = np.argsort(-model(x).detach().numpy(), axis=1)[:, :5]
    assert out["test_top5"] == np.mean([label in row for label, row in zip(y.numpy(), top5)])
    assert out["test_top5"] >= out["test_acc"]
    cfg = ExperimentConfig(DataConfig("smnist"), ModelConfig("flextcn-2"))
    assert step_options(cfg, 1000).top5 and not step_options(cfg, 3).top5
    cfg.train.top5_accuracy = True
    with pytest.raises(ConfigError, match="top5_accuracy: true needs at least 5 classes"):
        step_options(cfg, 3)


# --- the authors' epoch selection: validation splits, and the best epoch's weights before a resolution change ----

def test_a_validation_split_is_evaluated_every_epoch(tmp_path):
    rows = run_experiment(seq_config(tmp_path, epochs=2), "val").history     # JapaneseVowels: 448 / 96 / 96
    assert all({"val_acc", "val_loss", "test_acc"} <= set(r) for r in rows)
    assert all(0 <= r["val_acc"] <= 1 for r in rows)


def test_restore_best_takes_the_best_epoch_s_weights_to_the_next_resolution(tmp_path):
    """With train.restore_best, the model changed to the target resolution is the best source epoch's (by test
    accuracy on image data): its accuracy at the source, re-evaluated from the saved weights, is that epoch's."""
    from flexlib.engine import load_model
    from flexlib.engine.step import StepOptions, evaluate
    from flexlib.engine.run import BEST
    cfg = ExperimentConfig(
        data=DataConfig("cifar10", offline=True, train_size=96, test_size=64),
        model=ModelConfig("flexnet-3", {"width": 4, "mask_init": "official"}),
        optim=OptimConfig(lr=0.05, warmup_epochs=0),
        train=TrainConfig(epochs=4, batch_size=32, restore_best=True, out_dir=str(tmp_path)),
        resolution=ResolutionConfig(source=8, target=16, finetune_epochs=1))
    at_source = run_experiment(cfg, "best", stop_after_epochs=4)
    rows = at_source.history
    best = max(rows, key=lambda r: r["test_acc"])
    assert best["epoch"] != 4, "this seeded run's best epoch is an early one, so the restore is exercised"
    saved = load(at_source.run_dir / CHECKPOINT)
    assert saved["epoch"] == 4 and saved.get("weights_of_epoch", 4) == best["epoch"]
    assert load(at_source.run_dir / BEST)["epoch"] == best["epoch"]
    model = load_model(at_source.run_dir)
    data = build(DataConfig("cifar10", offline=True, train_size=96, test_size=64, resolution=8))
    loader = torch.utils.data.DataLoader(data.test, batch_size=32)
    from flexlib.engine.distributed import DistInfo
    again = evaluate(model, loader, torch.device("cpu"), StepOptions(), DistInfo())
    assert abs(again["test_acc"] - best["test_acc"]) < 1e-9
    final = run_experiment(cfg, run_dir=at_source.run_dir, resume=True)
    assert [h["stage"] for h in final.history][-2:] == ["target-before-finetune", "finetune"]


def test_njets_follow_a_resolution_change(tmp_path):
    """The authors' cross-resolution runs scale every N-Jet's σ by target/source (run_crossres.py)."""
    from flexlib.engine import load_model
    from flexlib.models.njet import NJetConv
    cfg = ExperimentConfig(
        data=DataConfig("cifar10", offline=True, train_size=32, test_size=32),
        model=ModelConfig("flexnet-3", {"width": 4, "type": "njet"}),
        optim=OptimConfig(warmup_epochs=0), train=TrainConfig(epochs=1, batch_size=32, out_dir=str(tmp_path)),
        resolution=ResolutionConfig(source=16, target=32, finetune_epochs=1))
    result = run_experiment(cfg, "njet")
    scales = {m.scale for m in load_model(result.run_dir).modules() if isinstance(m, NJetConv)}
    assert scales == {2.0}
