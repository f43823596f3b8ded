"""As a user meets them: checkpoints that are verified data and fall back to the previous one,
runs that never overwrite each other, and diverging runs that stop and keep their last good checkpoint."""
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from flexlib.__main__ import main
from flexlib.engine import (CheckpointError, CheckpointWarning, ConfigError, DivergenceError, RunDirError,
                            load_model, run_experiment)
from flexlib.engine import checkpoint
from flexlib.models import weights
from flexlib.engine.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TrainConfig, to_dict
from flexlib.engine.step import NonFiniteLossError, check_evaluation, check_loss
from flexlib.engine.checkpoint import CHECKPOINT
from flexlib.models import create

torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parent.parent
PREVIOUS = "checkpoint.prev.pt"


def tiny(out_dir, epochs=3, steps=2, **train) -> ExperimentConfig:
    """A FlexTCN on the offline sequence stand-in: 2 steps an epoch, a fraction of a second."""
    return ExperimentConfig(
        data=DataConfig("char_trajectories", offline=True, test_size=32),
        model=ModelConfig("flextcn-2", {"width": 4, "conv_mode": "fft"}),
        optim=OptimConfig(warmup_epochs=1),
        train=TrainConfig(epochs=epochs, batch_size=16, max_steps_per_epoch=steps, out_dir=str(out_dir), **train))


def tiny_image(out_dir, epochs=4) -> ExperimentConfig:
    """A FlexNet on 8-px photo crops: the quickest data to load in a fresh process (CLI subprocess tests)."""
    return ExperimentConfig(
        data=DataConfig("cifar10", offline=True, resolution=8, train_size=160, test_size=32),
        model=ModelConfig("flexnet-3", {"width": 4, "mask_init": "official"}),
        optim=OptimConfig(warmup_epochs=1), train=TrainConfig(epochs=epochs, batch_size=16, out_dir=str(out_dir)))


def params_file(tmp_path, cfg) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"full": {k: v for k, v in to_dict(cfg).items() if v is not None}}))
    return path


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A run of 3 epochs stopped after 2 (checkpoint.pt: epoch 2, checkpoint.prev.pt: epoch 1), and its
    uninterrupted history; tests take a copy."""
    base = tmp_path_factory.mktemp("template")
    full = run_experiment(tiny(base / "full"), "full")
    cut = run_experiment(tiny(base / "cut"), "cut", stop_after_epochs=2)
    return cut.run_dir, full.history


@pytest.fixture
def run(two_epochs, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(two_epochs[0], folder)
    (folder / checkpoint.LOCK).unlink(missing_ok=True)
    return folder


def strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resume(folder, capsys, *extra) -> tuple[int, str]:
    code = main(["train", "--resume", str(folder), *extra])
    return code, capsys.readouterr().err


# --- 1. checkpoints are verified data, with the previous one as fallback ----------------------------------------

def truncate(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def flip_64_bytes(p):
    data = bytearray(p.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    p.write_bytes(bytes(data))


CORRUPTIONS = {
    "truncated": (truncate, "truncated"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "random": (lambda p: p.write_bytes(os.urandom(4096)), "not a flexlib checkpoint"),
    "64-byte-flip": (flip_64_bytes, "SHA-256"),
    "plain-torch-file": (lambda p: torch.save({"model": {}}, p), "not a flexlib checkpoint"),
}


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_unusable_latest_checkpoint_resumes_from_the_previous_with_one_warning(run, two_epochs, capsys, kind):
    corrupt, reason = CORRUPTIONS[kind]
    corrupt(run / CHECKPOINT)
    code, err = resume(run, capsys)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and reason in warning[0] and PREVIOUS in warning[0] and str(run / CHECKPOINT) in warning[0]
    assert "Traceback" not in err
    history = json.loads((run / "metrics.json").read_text())
    assert strip(history) == strip(two_epochs[1])        # epoch 2 trained again from epoch 1: the same run
    assert (run / f"{CHECKPOINT}.unusable").exists()      # the bad file is kept aside, never loaded again


def test_both_checkpoints_unusable_is_one_line_naming_both_files(run, capsys):
    truncate(run / CHECKPOINT)
    (run / PREVIOUS).write_bytes(b"")
    code, err = resume(run, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: no usable checkpoint")
    assert str(run / CHECKPOINT) in err and str(run / PREVIOUS) in err


class Payload:
    """Unpickling this calls os.system (what a malicious checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _checkpoint_with_valid_header(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    return (weights.MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode()
            + payload)


def test_checkpoint_with_code_and_a_valid_hash_is_refused_not_run(run, tmp_path):
    marker = tmp_path / "pwned"
    (run / CHECKPOINT).write_bytes(_checkpoint_with_valid_header({"model": Payload(marker)}))
    with pytest.raises(CheckpointError, match=r"holds Python objects other than tensors \((posix|os).system\); "
                                              r"refused without running it"):
        checkpoint.load(run / CHECKPOINT)
    assert not marker.exists()


def test_pickled_os_system_checkpoint_is_refused_by_the_cli_and_never_executed(run, tmp_path):
    marker = tmp_path / "pwned"
    with open(run / CHECKPOINT, "wb") as f:
        pickle.dump({"model": Payload(marker)}, f)           # the classic attack: a bare pickle
    (run / PREVIOUS).write_bytes(_checkpoint_with_valid_header({"model": Payload(marker)}))
    out = subprocess.run([sys.executable, "-m", "flexlib", "train", "--resume", str(run)], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "TQDM_DISABLE": "1"}, timeout=120)
    assert out.returncode == 2 and not marker.exists()
    assert out.stderr.count("\n") == 1 and "refused" in out.stderr and "Traceback" not in out.stderr


def test_rng_states_survive_a_weights_only_round_trip():
    import random
    import numpy as np
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()                                # leaves a cached Gaussian in numpy's state
    state = checkpoint.decode(checkpoint.encode({"rng": checkpoint.rng_state()}))["rng"]
    expected = torch.rand(3), np.random.standard_normal(4), random.random()
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.standard_normal(4), expected[1])
    assert random.random() == expected[2]


def test_a_kill_during_a_save_leaves_the_old_checkpoint_and_no_temporary(run, monkeypatch):
    before = sha(run / CHECKPOINT)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_atomic({"x": torch.ones(3)}, run / CHECKPOINT)
    assert sha(run / CHECKPOINT) == before and not list(run.glob(".*tmp*"))


def test_stray_temporaries_of_a_killed_process_are_removed_at_resume(run, capsys):
    (run / ".checkpoint.pt.tmp424242").write_bytes(os.urandom(100))
    (run / ".metrics.json.tmp424242").write_text("[")
    code, err = resume(run, capsys, "--stop-after-epochs", "1")
    assert code == 0, err
    assert not list(run.glob(".*.tmp*"))


def test_metrics_never_run_ahead_of_the_checkpoint(tmp_path, monkeypatch):
    real_save = checkpoint.save_atomic
    calls = []

    def killed_on_the_second_save(obj, path, **kw):
        calls.append(obj["epoch"])
        if len(calls) == 2:
            raise KeyboardInterrupt                            # as a kill while writing epoch 2's checkpoint
        return real_save(obj, path, **kw)
    monkeypatch.setattr(checkpoint, "save_atomic", killed_on_the_second_save)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny(tmp_path), "cut", run_dir=tmp_path / "run")
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1] == [checkpoint.load(tmp_path / "run" / CHECKPOINT)["epoch"]]


def test_load_model_falls_back_to_the_previous_checkpoint_with_a_warning(run):
    flip_64_bytes(run / CHECKPOINT)
    with pytest.warns(CheckpointWarning, match="SHA-256"):
        model = load_model(run)
    previous = checkpoint.load(run / PREVIOUS)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in previous.items() if isinstance(v, torch.Tensor))


def test_a_checkpoint_of_another_model_is_refused_with_its_name(run, capsys):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["kwargs"]["width"] = 6
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    code, err = resume(run, capsys)
    assert code == 2 and "another run's checkpoint" in err and str(run / CHECKPOINT) in err
    assert "model.kwargs.width: 4 (this run: 6)" in err and err.count("\n") == 1


def test_kill_9_then_resume_finishes_the_same_run(tmp_path):
    """A real SIGKILL in the middle of training; --resume ends where the uninterrupted run ends, bit for bit."""
    cfg = tiny_image(tmp_path / "runs")
    whole = run_experiment(cfg, "whole")
    params = params_file(tmp_path, cfg)
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen([sys.executable, "-m", "flexlib", "train", str(params), "--run-dir",
                               str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    metrics, deadline = tmp_path / "killed" / "metrics.json", time.time() + 120
    while time.time() < deadline and not (metrics.exists() and json.loads(metrics.read_text())):
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "the run ended before the kill; make it longer"
    resumed = subprocess.run([sys.executable, "-m", "flexlib", "train", "--resume", str(tmp_path / "killed")],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert strip(json.loads(metrics.read_text())) == strip(whole.history) and len(whole.history) == 4
    assert not list((tmp_path / "killed").glob(".*.tmp*"))


# --- 2. nothing is overwritten --------------------------------------------------------------------------------

def test_run_dir_of_an_existing_run_is_refused_and_the_run_untouched(run, tmp_path, capsys):
    params = params_file(tmp_path, tiny(tmp_path))
    before = {p.name: sha(p) for p in run.iterdir() if p.is_file()}
    assert main(["train", str(params), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "never overwrites a run" in err and f"--resume {run}" in err and err.count("\n") == 1
    assert {p.name: sha(p) for p in run.iterdir() if p.is_file()} == before


def test_an_empty_existing_folder_is_used_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert checkpoint.claim(tmp_path / "empty", tmp_path, "x") == (tmp_path / "empty", False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        checkpoint.claim(tmp_path / "file", tmp_path, "x")


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    folders = {checkpoint.claim(None, tmp_path, "same")[0] for _ in range(3)}
    assert len(folders) == 3 and all(f.is_dir() for f in folders)


@pytest.mark.parametrize("bad", ["model_fn_raises", "cuda_device", "bf16_on_cpu", "missing_dataset"])
def test_failed_starts_leave_no_run_folder(tmp_path, bad):
    cfg, model_fn = tiny(tmp_path / "runs"), None
    if bad == "cuda_device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if bad == "model_fn_raises":
        model_fn = lambda c, d: (_ for _ in ()).throw(ValueError("bad model"))
    elif bad == "cuda_device":
        cfg.train.device = "cuda"
    elif bad == "bf16_on_cpu":
        cfg.train.device, cfg.train.precision = "cpu", "bf16"
    else:
        cfg.data = DataConfig("char_trajectories", root=str(tmp_path / "nothing"))
    with pytest.raises((ValueError, FileNotFoundError)):
        run_experiment(cfg, "fail", **({"model_fn": model_fn} if model_fn else {}))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_run_in_use_by_another_process_is_refused(run, capsys):
    with checkpoint.locked(run):
        code, err = resume(run, capsys)
    assert code == 2 and "in use by another flexlib process" in err


def test_resume_and_run_dir_together_are_refused(run, tmp_path, capsys):
    assert main(["train", "--resume", str(run), "--run-dir", str(tmp_path / "other")]) == 2
    assert "not both" in capsys.readouterr().err


# --- 3. divergence is caught ----------------------------------------------------------------------------------

class Explode(nn.Module):
    """A FlexTCN behind a BatchNorm; from training forward `after` on, its input (the BatchNorm statistics
    overflow, the loss stays finite) or its logits (the loss explodes) are multiplied by `factor`."""

    def __init__(self, channels, classes, after, where, factor):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.model = create("flextcn-2", channels, classes, width=4, conv_mode="fft")
        self.after, self.where, self.factor, self.calls = after, where, factor, 0

    def forward(self, x):
        self.calls += self.training
        boom = self.training and self.calls > self.after
        out = self.model(self.norm(x * self.factor if boom and self.where == "input" else x))
        return out * self.factor if boom and self.where == "logits" else out


def _exploding(where, factor, after=2 + 1):
    return lambda cfg, data: Explode(data.in_channels, data.num_classes, after, where, factor)


@pytest.mark.parametrize("where, factor, what", [
    ("logits", 1e12, "cross-entropy .* exceeds 100 x ln"),
    ("input", 1e30, "after the optimizer step, NaN or inf in buffers? norm.running_var")])
def test_divergence_stops_names_epoch_step_and_keeps_the_last_good_checkpoint(tmp_path, where, factor, what):
    with pytest.raises(DivergenceError, match=rf"epoch 2, step 1 \(train stage\): {what}.*checkpoint of epoch 1"):
        run_experiment(tiny(tmp_path), "boom", run_dir=tmp_path / "run", model_fn=_exploding(where, factor))
    state = checkpoint.load(tmp_path / "run" / CHECKPOINT)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values()
                                       if isinstance(v, torch.Tensor))
    assert [r["epoch"] for r in json.loads((tmp_path / "run" / "metrics.json").read_text())] == [1]


def test_a_nan_mask_sigma_is_divergence_before_the_next_forward_not_a_crop_error(tmp_path):
    def model_fn(cfg, data):
        model = create("flextcn-2", data.in_channels, data.num_classes, width=4, conv_mode="fft")
        steps = {"n": 0}

        def poison(grad):                                      # as lr=inf would: sigma is NaN after step 1
            steps["n"] += 1
            return grad * float("nan") if steps["n"] > 1 else grad
        next(model.blocks[0].conv1.mask.parameters()).register_hook(poison)
        return model
    with pytest.raises(DivergenceError, match=r"epoch 1, step 1 .*NaN or inf in parameters? blocks.0.conv1.mask"):
        run_experiment(tiny(tmp_path), "sigma", run_dir=tmp_path / "run", model_fn=model_fn)


def test_lr_1e6_diverges_through_the_cli_with_exit_2_and_one_line(tmp_path):
    params = params_file(tmp_path, tiny_image("runs"))
    out = subprocess.run([sys.executable, "-m", "flexlib", "train", str(params), "--set", "optim.lr=1e6"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "TQDM_DISABLE": "1"},
                         timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: training diverged at epoch 1, step ")


@pytest.mark.parametrize("objective, ce, factor, error", [
    (2.3, 2.3, 100.0, None), (float("nan"), 2.3, 100.0, NonFiniteLossError), (float("inf"), 2.3, None,
                                                                               NonFiniteLossError),
    (300.0, 300.0, 100.0, DivergenceError), (300.0, 300.0, None, None), (300.0, 200.0, 100.0, None)])
def test_divergence_rule_on_the_loss(objective, ce, factor, error):
    """ln(10) = 2.303: the loss-size limit for 10 classes at the default factor 100 is 230.3."""
    if error is None:
        check_loss(objective, ce, 10, factor, "epoch 1, step 0")
    else:
        with pytest.raises(error, match="epoch 1, step 0"):
            check_loss(objective, ce, 10, factor, "epoch 1, step 0")


def test_non_finite_test_loss_is_divergence():
    with pytest.raises(DivergenceError, match="epoch 3"):
        check_evaluation(float("nan"), "epoch 3 (train stage)")


def test_a_divergence_factor_that_could_never_trigger_sensibly_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"divergence_factor: 0.5 is not allowed; expected a finite number > 1"):
        run_experiment(tiny(tmp_path, divergence_factor=0.5), "x")
