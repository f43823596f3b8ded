"""Models leave the engine: `python -m flexlib export` writes a file that plain PyTorch opens, `flexlib.models.load`
rebuilds the model from it or from a run folder (at the resolution the run was at), and `evaluate --run` tests a
run's model on its test split."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexlib.__main__ import main
from flexlib.engine import load_model, run_experiment
from flexlib.engine.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, ResolutionConfig, TrainConfig
from flexlib.models import load
from flexlib.models.weights import WeightsError

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path, name="flexnet-3", resolution=None, **kwargs):
    cfg = ExperimentConfig(DataConfig("cifar10", offline=True, train_size=64, test_size=32),
                           ModelConfig(name, {"width": 4, "mask_init": "official", **kwargs}),
                           OptimConfig(warmup_epochs=0), TrainConfig(epochs=1, batch_size=32, out_dir=str(tmp_path)),
                           resolution=resolution)
    return run_experiment(cfg, "export-test")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("runs"))


def test_an_export_opens_in_a_python_that_imports_only_torch_and_loads_back_into_flexlib(run, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["export", str(run.run_dir), "--out", str(out)]) == 0
    assert "torch.load" in capsys.readouterr().out
    probe = ("import sys, torch\n"
             f"obj = torch.load({str(out)!r}, weights_only=True)\n"
             "assert not any(m.startswith('flexlib') for m in sys.modules)\n"
             "print(sorted(obj), obj['create']['name'], len(obj['state_dict']))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split()[:5] == ["['create',", "'format',", "'source',", "'state_dict']", "flexnet-3"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = load_model(run.run_dir)(x)
        torch.testing.assert_close(load(out)(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(load(run.run_dir)(x), expected, rtol=0, atol=0)
    obj = torch.load(out, weights_only=True)
    assert obj["create"] == {"name": "flexnet-3", "in_channels": 3, "num_classes": 10, "width": 4,
                             "mask_init": "official"}
    assert obj["source"]["epoch"] == 1 and obj["source"]["test_acc"] == run.final["test_acc"]


def test_an_export_is_never_written_over_a_file_and_holds_only_finite_weights(run, tmp_path, capsys):
    out = tmp_path / "taken.pt"
    out.write_text("mine")
    assert main(["export", str(run.run_dir), "--out", str(out)]) == 2
    assert "never overwrites" in capsys.readouterr().err and out.read_text() == "mine"
    model = load(run.run_dir)
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    from flexlib.models.export import save
    with pytest.raises(WeightsError, match=r"NaN or inf in 1 tensor: head.bias"):
        save(model, tmp_path / "nan.pt", {"name": "flexnet-3", "in_channels": 3, "num_classes": 10})
    assert not (tmp_path / "nan.pt").exists()


def test_load_refuses_what_is_not_a_model_in_one_line(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a flexlib model export"):
        load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no run metadata"):
        load(tmp_path)


def test_a_run_past_a_resolution_change_loads_at_the_resolution_it_was_at(tmp_path):
    from flexlib.layers import FlexConv
    result = _run(tmp_path, resolution=ResolutionConfig(source=16, target=32, finetune_epochs=1))
    model = load(result.run_dir)
    assert {c.sampling_rate_norm for c in model.modules() if isinstance(c, FlexConv)} == {0.25}   # (16/32)², eq. 9
    njets = _run(tmp_path / "njet", name="flexnet-16-njet", resolution=ResolutionConfig(16, 32, 1))
    from flexlib.models import NJetConv
    assert {m.scale for m in load(njets.run_dir).modules() if isinstance(m, NJetConv)} == {2.0}


def test_evaluate_run_tests_the_runs_model_on_its_test_split(run, tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["evaluate", "--run", str(run.run_dir), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert str(run.run_dir) in line and "weights of epoch 1" in line
    result = json.loads(out.read_text())
    assert result["test_acc"] == pytest.approx(run.final["test_acc"]) and result["test_images"] == 32
    assert main(["evaluate", "--run", str(run.run_dir), "--at", "48"]) == 0
    assert "at 48 px (trained at 32 px)" in capsys.readouterr().out
    assert main(["evaluate"]) == 2 and "one of --run RUN_DIR" in capsys.readouterr().err
