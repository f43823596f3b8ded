"""Params files load into typed configs; mistakes are refused with a useful message."""
from pathlib import Path

import pytest

from flexlib.engine.config import ConfigError, ExperimentConfig, load_config
from flexlib.paper.kodak_fitting import FitConfig

# Every engine experiment file (params/notebooks/ holds the notebooks' parameter files, another format), with every
# value checked as `python -m flexlib train` checks it.
PARAMS = sorted((Path(__file__).resolve().parent.parent / "params" / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", ["full", "quick"])
def test_every_params_file_loads(path, profile):
    cfg = load_config(path, profile, cls=FitConfig if path.stem == "kodak" else ExperimentConfig)
    if profile == "quick" and path.stem != "kodak":
        assert cfg.data.offline, "quick profiles must use offline data"


def test_quick_is_merged_over_full(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("full:\n  data: {dataset: smnist}\n  model: {name: flextcn-2}\n"
                 "  optim: {lr: 0.01, weight_decay: 1e-5}\n"
                 "  train: {epochs: 200}\nquick:\n  train: {epochs: 2}\n")
    cfg = load_config(f, "quick", ["optim.lr=0.5", "data.train_size=10"])
    assert (cfg.train.epochs, cfg.optim.lr, cfg.data.train_size, cfg.data.dataset) == (2, 0.5, 10, "smnist")
    assert cfg.optim.weight_decay == 1e-5          # "1e-5" is a string to PyYAML; the float field accepts it


def test_unknown_key_names_it_and_suggests(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("full:\n  data: {dataset: smnist}\n  model: {name: flextcn-2}\n  optim: {wieght_decay: 0.01}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'wieght_decay'.*did you mean 'weight_decay'"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*did you mean 'epochs'"):
        load_config(_valid(tmp_path), overrides=["train.epoch=3"])


def _valid(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("full:\n  data: {dataset: smnist}\n  model: {name: flextcn-2}\n")
    return f


def test_wrong_type_and_missing_profile(tmp_path):
    with pytest.raises(ConfigError, match="train.epochs: expected int"):
        load_config(_valid(tmp_path), overrides=["train.epochs=many"])
    with pytest.raises(ConfigError, match="no profile 'quick'"):
        load_config(_valid(tmp_path), "quick")
    with pytest.raises(ConfigError, match="not one of"):
        load_config(_valid(tmp_path), overrides=["train.precision=fp8"])


def test_a_mapping_override_merges_and_colon_equals_replaces():
    path = next(p for p in PARAMS if p.stem == "cifar10")
    merged = load_config(path, "full", ["model.kwargs={width: 8}"])
    assert merged.model.kwargs == {"mask_init": "official", "width": 8}
    replaced = load_config(path, "full", ["model.name=ckcnn-16", "model.kwargs:={}"])
    assert replaced.model.kwargs == {} and replaced.model.name == "ckcnn-16"
    with pytest.raises(ConfigError, match=r"cifar10.yaml \[full\] \(--set model.kwargs\) model.kwargs: unknown key 'widht'"):
        load_config(path, "full", ["model.kwargs:={widht: 8}"])


def test_overrides_as_a_mapping_give_the_config_the_strings_give():
    """A notebook's `overrides` is a mapping (a papermill parameters line holds one "="): {key: value} builds the
    same config as the 'key=value' strings, None/False/strings/mappings included; anything else is refused."""
    params = Path(__file__).resolve().parents[1] / "params" / "experiments" / "cifar10.yaml"
    strings = ["train.epochs=3", "data.train_size=null", "train.restore_best=false", "optim.schedule=warmup_constant",
               "model.kwargs={width: 8}"]
    mapping = {"train.epochs": 3, "data.train_size": None, "train.restore_best": False,
               "optim.schedule": "warmup_constant", "model.kwargs": {"width": 8}}
    assert load_config(params, "quick", mapping) == load_config(params, "quick", strings)
    assert load_config(params, "quick", mapping).model.kwargs["width"] == 8
    with pytest.raises(ConfigError, match=r"overrides must be a mapping .* got \[3\]"):
        load_config(params, "quick", [3])
