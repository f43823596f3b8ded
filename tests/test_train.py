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
    cfg = seq_config(tmp_path, epochs=3)                             # 270 examples, batch 32: 8 steps an epoch
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3"):
        run_experiment(cfg, "nan", run_dir=tmp_path / "run",
                       model_fn=lambda c, d: NaNAfter(d.in_channels, d.num_classes, n=8 + 3))
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


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from flexlib.engine import distributed
    from flexlib.engine.loop import StepOptions, batch_loss
    info = distributed.setup("cpu")
    model = distributed.wrap(_tiny_model(), info, torch.device("cpu"))
    x, y = _batch()
    shard = slice(rank * 4, (rank + 1) * 4)
    loss, _, _ = batch_loss(model, x[shard], y[shard], StepOptions(alias_lambda=0.1))
    loss.backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in distributed.unwrap(model).named_parameters()}, out)
    distributed.cleanup()


def test_two_process_ddp_gradient_equals_the_single_process_gradient(tmp_path):
    from flexlib.engine.loop import StepOptions, batch_loss
    out = tmp_path / "grads.pt"
    mp.spawn(_ddp_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    model = _tiny_model()
    x, y = _batch()
    loss, _, _ = batch_loss(model, x, y, StepOptions(alias_lambda=0.1))
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
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())
    changed = [k for k, v in start.state_dict().items() if v.is_floating_point() and not torch.equal(v, saved[k])]
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
