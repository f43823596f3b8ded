"""Every paper experiment's `full` profile runs end to end on data in the real on-disk formats (tests/formats.py):
the real loaders, the paper's model, the protocol's settings, for one step per stage (`train.epochs=1`,
`train.max_steps_per_epoch=1`, `resolution.finetune_epochs=1`: the documented way to smoke-test a profile), and one
notebook's `full` parameters through papermill."""
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import formats
from flexlib.data import sources
from flexlib.data.storage import sha256
from flexlib.engine import load_config, run_experiment
from flexlib.paper import protocol

ROOT = Path(__file__).resolve().parents[1]
ONE_STEP = ["train.epochs=1", "train.max_steps_per_epoch=1", "train.device=cpu"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """One data root holding every paper dataset in its real format (small)."""
    root = tmp_path_factory.mktemp("data")
    formats.write_cifar10(root)
    formats.write_mnist(root)
    formats.write_stl10(root)
    for k in (16, 32):
        formats.write_imagenet(root, k)
    formats.char_trajectories_zip(root / "CharacterTrajectories.zip")
    formats.speech_commands_tar(root / "speech_commands_v0.02.tar.gz")
    return root


@pytest.fixture
def real_formats(monkeypatch, data_root):
    """torchvision's md5 of the real CIFAR-10/STL-10 files and the published SHA-256 of the Speech Commands archive
    cannot match small test files: presence is checked instead, and the test archive's own checksum stands in."""
    import torchvision.datasets.cifar
    import torchvision.datasets.stl10
    for module in (torchvision.datasets.cifar, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    archive = data_root / "speech_commands_v0.02.tar.gz"
    monkeypatch.setitem(sources.SOURCES, "speech_commands",
                        replace(sources.SOURCES["speech_commands"], sha256=sha256(archive)))
    return data_root


@pytest.mark.parametrize("experiment", sorted(protocol.DEFAULT_ROWS))
def test_full_profile_runs_one_step_on_format_exact_data(experiment, real_formats, tmp_path):
    torch.set_num_threads(1)
    cfg = load_config(ROOT / "params" / "experiments" / f"{experiment}.yaml", "full",
                      [f"data.root={real_formats}", f"train.out_dir={tmp_path}", *ONE_STEP,
                       *(["resolution.finetune_epochs=1"] if experiment.endswith("alias_free") else [])])
    row = protocol.row(protocol.DEFAULT_ROWS[experiment])
    assert cfg.model.name == row.model and cfg.train.batch_size == row.batch_size and not cfg.data.offline
    result = run_experiment(cfg, experiment)
    assert result.finished and "stand-in" not in result.dataset
    stages = [h["stage"] for h in result.history]
    assert stages == (["train", "target-before-finetune", "finetune"] if cfg.resolution else ["train"])
    assert all(math.isfinite(h["test_loss"]) for h in result.history)
    assert result.metadata["parameters"] > 0 and result.metadata["config"]["model"]["name"] == row.model


def test_a_notebook_runs_its_full_parameters_through_papermill(data_root, tmp_path):
    """cifar.ipynb with params/notebooks/cifar_full.yaml, restricted to Table 9 (MNIST: one protocol row, its three
    seeds) and one step per run: the full path of a notebook, papermill to the saved results."""
    papermill = Path(sys.executable).parent / "papermill"
    if not papermill.exists():
        pytest.skip("needs papermill in the environment (pip install -e '.[notebooks]')")
    out = tmp_path / "out"
    out.mkdir()
    overrides = {"data.root": str(data_root), "train.out_dir": str(tmp_path / "runs"),
                 "train.epochs": 1, "train.max_steps_per_epoch": 1, "train.device": "cpu"}   # ONE_STEP
    done = subprocess.run([str(papermill), "-k", "python3", "--cwd", str(ROOT / "notebooks"),
                           "-f", str(ROOT / "params" / "notebooks" / "cifar_full.yaml"),
                           "-y", json.dumps({"device": "cpu", "tables": ["9"], "overrides": overrides,
                                             "output_dir": str(out), "keep_runs": False}),
                           str(ROOT / "notebooks" / "cifar.ipynb"), str(out / "cifar.ipynb")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    per_run = json.loads((out / "per_run.json").read_text())
    assert [r["seed"] for r in per_run] == [0, 1, 2] and {r["row"] for r in per_run} == {"T9 FlexNet-16"}
    assert all("MNIST (torchvision)" in r["our_data"] for r in per_run)
    summary = json.loads((out / "accuracy.json").read_text())
    assert summary[0]["paper"] == 99.7 and summary[0]["n"] == 3
