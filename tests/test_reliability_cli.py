"""As a user meets them: every config value checked where it is read (file, key, value, what
is allowed), and the command line answering every deliberate error in one line with exit code 2."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flexlib.__main__ import main
from flexlib.engine.config import ConfigError, load_config
from flexlib.paper.kodak_fitting import FitConfig

PARAMS = Path(__file__).resolve().parent.parent / "params" / "experiments"
SEQ = "full:\n  data: {dataset: smnist, offline: true}\n  model: {name: flextcn-2, kwargs: {width: 8}}\n"


@pytest.fixture
def params(tmp_path) -> Path:
    path = tmp_path / "seq.yaml"
    path.write_text(SEQ)
    return path


# --- 4. every value checked, with the file, the key, the value and what is allowed -----------------------------

BAD_VALUES = [
    ("train.epochs=0", "train.epochs: 0 is not allowed; expected an integer >= 1"),
    ("train.batch_size=-2", "train.batch_size: -2 is not allowed; expected an integer 1..65536"),
    ("train.max_steps_per_epoch=0", "train.max_steps_per_epoch: 0 is not allowed; expected an integer >= 1 or null"),
    ("train.eval_batch_size=0", "train.eval_batch_size: 0 is not allowed"),
    ("train.seed=-1", "train.seed: -1 is not allowed; expected an integer 0..4294967295"),
    ("train.alias_lambda=-0.1", "train.alias_lambda: -0.1 is not allowed; expected a finite number >= 0"),
    ("train.device=gpu", "train.device: 'gpu' is not allowed; expected 'auto', 'cpu', 'cuda', 'cuda:<index>'"),
    ("train.device=cuda:x", "train.device: 'cuda:x' is not allowed"),
    ("train.divergence_factor=1", "train.divergence_factor: 1.0 is not allowed; expected a finite number > 1"),
    ("train.precision=fp8", "train.precision: 'fp8' is not one of ['fp32', 'bf16']"),
    ("train.top5_accuracy=maybe", "train.top5_accuracy: expected bool or null, got 'maybe'"),
    ("optim.lr=0", "optim.lr: 0.0 is not allowed; expected a finite number > 0"),
    ("optim.lr=-0.01", "optim.lr: -0.01 is not allowed; expected a finite number > 0"),
    ("optim.lr=.inf", "optim.lr: inf is not allowed; expected a finite number > 0"),
    ("optim.lr=.nan", "optim.lr: nan is not allowed"),
    ("optim.weight_decay=-1e-5", "optim.weight_decay: -1e-05 is not allowed; expected a finite number >= 0"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs: -1 is not allowed; expected an integer >= 0"),
    ("optim.mask_lr_factor=-1", "optim.mask_lr_factor: -1.0 is not allowed"),
    ("optim.weight_decay_form=l2", "optim.weight_decay_form: 'l2' is not one of ['adam', 'kernel_norm']"),
    ("data.test_size=-5", "data.test_size: -5 is not allowed; expected an integer >= 1 or null (all examples)"),
    ("data.train_size=0", "data.train_size: 0 is not allowed"),
    ("data.resolution=0", "data.resolution: 0 is not allowed"),
    ("data.num_workers=-1", "data.num_workers: -1 is not allowed"),
    ("data.dataset=smnsit", "data.dataset: 'smnsit' is not allowed; expected one of the known datasets (did you mean "
                            "'smnist'?)"),
    ("model.name=flextcn-3", "model.name: 'flextcn-3' is not allowed; expected one of the models (did you mean"),
    ("model.kwargs.widht=8", "model.kwargs: unknown key 'widht' for flextcn-2; did you mean 'width'? Valid keys: "),
    ("model.kwargs.width=eight", "model.kwargs: width: expected int, got 'eight'"),
    ("model.kwargs.kernel_net=magnett", "model.kwargs: ConvConfig.kernel_net must be one of"),
    ("resolution={source: 0, target: 32}", "resolution.source: 0 is not allowed; expected an integer 1..1024"),
    ("train.epochs=[", "--set train.epochs:1:2: YAML syntax error"),
    ("train.epochs=3.5", "train.epochs: expected int, got 3.5"),
    ("train=3", "train: expected a mapping of TrainConfig keys, got 3"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_value_names_file_key_value_and_what_is_allowed(params, override, message):
    with pytest.raises(ConfigError) as err:
        load_config(params, overrides=[override])
    text = str(err.value)
    assert message in text
    if "YAML" not in message:
        assert text.startswith(f"{params} [full] (--set {override.split('=')[0]})")
    assert "\n" not in text


BAD_FIT = [("rows=[magnett]", "rows: ['magnett'] is not allowed; expected a list whose items are each one of the "
                               "Table 5 rows (did you mean 'magnet'?)"),
           ("rows=[]", "rows: [] is not allowed; expected a non-empty list"),
           ("images=[25]", "images: [25] is not allowed; expected a list whose items are each an integer 1..24"),
           ("iterations=0", "iterations: 0 is not allowed"), ("lr=0", "lr: 0.0 is not allowed"),
           ("downsample=0", "downsample: 0 is not allowed")]


@pytest.mark.parametrize("override, message", BAD_FIT, ids=[o for o, _ in BAD_FIT])
def test_bad_fit_rows_and_values_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)").replace("?", r"\?")):
        load_config(PARAMS / "kodak.yaml", "quick", [override], FitConfig)


def test_duplicate_yaml_keys_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(SEQ + "  optim: {lr: 0.1}\n  optim: {lr: 0.2}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5: duplicate key 'optim' \(first on line 4\)"):
        load_config(path)
    path.write_text(SEQ + "  optim: {lr: 0.1, lr: 0.2}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: duplicate key 'lr'"):
        load_config(path)


def test_a_yaml_syntax_error_is_one_line_with_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(SEQ + "  optim: {lr: 0.1\n  train: {epochs: 2}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:5:\d+: YAML syntax error: .*") as err:
        load_config(path)
    assert "\n" not in str(err.value)


# --- 5. the CLI speaks in one line ----------------------------------------------------------------------------

def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flexlib", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "TQDM_DISABLE": "1"}, timeout=120)


def test_a_config_error_is_one_line_exit_2_and_debug_adds_the_traceback(params, tmp_path):
    plain = cli("train", str(params), "--set", "optim.lr=.inf", cwd=tmp_path)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: ") and "optim.lr: inf" in plain.stderr
    debug = cli("train", str(params), "--set", "optim.lr=.inf", "--debug", cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()
    assert not (tmp_path / "runs").exists()


def test_a_garbage_dataset_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "CharacterTrajectories.zip").write_bytes(os.urandom(2048))
    path = tmp_path / "ct.yaml"
    path.write_text(f"full:\n  data: {{dataset: char_trajectories, root: {tmp_path}}}\n  model: {{name: flextcn-2}}\n")
    out = cli("train", str(path), cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and "CharacterTrajectories.zip" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["--set", "train.precision=bf16", "--set", "train.device=cpu"], "train.precision: 'bf16' needs a CUDA device"),
    (["--set", "model.name=resnet"], "model.name: 'resnet' is not allowed"),
    (["--set", "model.kwargs={norm: group}"], "model.kwargs"),
    (["--set", "noequals"], "must look like section.key=value"),
    (["--profile", "quik"], "no profile 'quik'"),
])
def test_deliberate_errors_are_one_line_and_exit_2(params, tmp_path, capsys, args, message):
    assert main(["train", str(params), *args, "--set", f"train.out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "runs").exists()


def test_missing_files_are_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: params file {tmp_path / 'nope.yaml'} does not exist\n"
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a flexlib run folder" in capsys.readouterr().err
    assert main(["fit", str(PARAMS / "kodak.yaml"), "--profile", "quick", "--set", "rows=[sirne]"]) == 2
    assert "did you mean 'siren'" in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_exit_1_pointing_at_debug(params, monkeypatch, capsys):
    import flexlib.engine.run as run
    monkeypatch.setattr(run, "run_experiment", lambda *a, **k: (_ for _ in ()).throw(KeyError("boom")))
    assert main(["train", str(params)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected KeyError: 'boom'") and "--debug" in err and err.count("\n") == 1


def test_fit_refuses_an_existing_run_dir(tmp_path, capsys):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "results.csv").write_text("x")
    assert main(["fit", str(PARAMS / "kodak.yaml"), "--profile", "quick", "--run-dir", str(tmp_path / "done")]) == 2
    assert "never overwrites a run" in capsys.readouterr().err
    assert (tmp_path / "done" / "results.csv").read_text() == "x"


def test_usage_errors_are_one_line_too(params, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(params), "--stop-after-epochs", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: argument --stop-after-epochs: expected an integer >= 1, got '0'")
