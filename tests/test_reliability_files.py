"""As a user meets them, the last silent answers of the hostile battery: non-finite weights, another run's
checkpoint, payloads and foreign files, sizes and seeds out of range, model kwargs, one way forward after an early
kill, and notebook parameters. Each answer is one line that names the file or value and why, or a correct result."""
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from flexlib.engine import CheckpointError, CheckpointWarning, ConfigError, load_model, run_experiment
from flexlib.engine import checkpoint
from flexlib.engine.checkpoint import CHECKPOINT
from flexlib.engine.cli import main, out_of_memory
from flexlib.engine.config import load_config
from flexlib.engine.step import DivergenceError
from flexlib.models import AuthorsCheckpointError, create, from_authors_checkpoint
from flexlib.models.authors import load_authors_state_dict
from flexlib.models import weights
from flexlib.models.weights import check_finite, non_finite
from flexlib.paper import runs as paper_runs
from test_authors_checkpoint import CIFAR10, _quick_checkpoint
from test_reliability import params_file, strip, tiny

torch.set_num_threads(1)
os.environ.setdefault("TQDM_DISABLE", "1")
PREVIOUS = "checkpoint.prev.pt"
PAYLOAD = "holds Python objects other than tensors (posix.system); refused without running it"


def one_line_error(err: str) -> bool:
    return err.startswith("error: ") and err.count("\n") == 1 and "unexpected" not in err and "Traceback" not in err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the same experiment, seeds 0 and 7, each stopped after 2 of 3 epochs; tests take copies."""
    base = tmp_path_factory.mktemp("runs")
    seed0 = run_experiment(tiny(base), "seed0", run_dir=base / "seed0", stop_after_epochs=2).run_dir
    seed7 = run_experiment(tiny(base, seed=7), "seed7", run_dir=base / "seed7", stop_after_epochs=2).run_dir
    return seed0, seed7


def copy(folder, tmp_path, name="run") -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    (target / checkpoint.LOCK).unlink(missing_ok=True)
    return target


def resume(folder, capsys, *extra) -> tuple[int, str]:
    code = main(["train", "--resume", str(folder), *extra])
    return code, capsys.readouterr().err


def evaluate(capsys, spec, *extra) -> tuple[int, str]:
    code = main(["evaluate", str(CIFAR10), "--profile", "quick", "--set", "data.test_size=20", "--authors-checkpoint",
                 str(spec), *extra])
    return code, capsys.readouterr().err


# --- 1. non-finite weights are refused at every load, naming the tensors ----------------------------------------

def _poisoned_authors_checkpoint(path, key_end, column, value):
    _quick_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    key = next(k for k in saved["model"] if k.endswith(key_end))
    tensor = saved["model"][key]
    tensor.view(-1, *tensor.shape[1:])[(0, column) if tensor.dim() > 1 else 0] = value
    torch.save(saved, path)
    return key


@pytest.mark.parametrize("key_end, column, value, what", [("cconv1.bias", None, float("nan"), "1 NaN of 8"),
                                                          ("cconv1.mask_params", 1, float("inf"), "1 inf of 4")])
def test_an_authors_checkpoint_with_a_nan_or_inf_is_refused_naming_the_tensor(tmp_path, capsys, key_end, column,
                                                                              value, what):
    path = tmp_path / "poisoned.pt"
    key = _poisoned_authors_checkpoint(path, key_end, column, value)
    code, err = evaluate(capsys, path)                              # was: "acc 8.00 %, loss nan", exit 0
    assert code == 2 and one_line_error(err) and f"{key} ({what})" in err and str(path) in err
    with pytest.raises(AuthorsCheckpointError, match=rf"holds NaN or inf in 1 tensor: {key}"):
        from_authors_checkpoint(path, "flexnet-3", 3, 10, width=8, mask_init="official")
    state = torch.load(path, weights_only=True)["model"]
    with pytest.raises(AuthorsCheckpointError, match=rf"the authors' state dict holds NaN or inf .*{key}"):
        from_authors_checkpoint(state, "flexnet-3", 3, 10, width=8, mask_init="official")


def test_a_run_checkpoint_with_nan_weights_falls_back_to_the_previous_and_both_is_one_line(runs, tmp_path, capsys):
    folder = copy(runs[0], tmp_path)
    state = checkpoint.load(folder / CHECKPOINT)
    state["model"]["blocks.0.conv1.bias"][0] = float("nan")
    checkpoint.save_atomic(state, folder / CHECKPOINT, keep_previous=False)   # a valid file, with NaN inside
    with pytest.warns(CheckpointWarning, match=r"model\.blocks\.0\.conv1\.bias \(1 NaN of 4\).*previous checkpoint"):
        load_model(folder)
    state = checkpoint.load(folder / PREVIOUS)
    state["optimizer"]["state"][0]["exp_avg_sq"].fill_(float("inf"))
    checkpoint.save_atomic(state, folder / PREVIOUS, keep_previous=False)
    code, err = resume(folder, capsys)
    assert code == 2 and one_line_error(err) and err.startswith("error: no usable checkpoint")
    assert "model.blocks.0.conv1.bias (1 NaN" in err and "optimizer.state.0.exp_avg_sq" in err


def test_the_engine_never_writes_a_checkpoint_with_non_finite_values(tmp_path, monkeypatch):
    from flexlib.engine import run as run_module
    real = run_module.build_optimizer

    def poisoned(model, cfg):           # Adam's second moments overflow while the weights stay finite
        optimizer = real(model, cfg)
        optimizer.register_step_post_hook(
            lambda opt, args, kwargs: next(iter(opt.state.values()))["exp_avg_sq"].fill_(float("inf")))
        return optimizer
    monkeypatch.setattr(run_module, "build_optimizer", poisoned)
    with pytest.raises(DivergenceError, match=r"epoch 1 \(train stage\): NaN or inf in optimizer.state.0.exp_avg_sq"):
        run_experiment(tiny(tmp_path), "inf", run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / CHECKPOINT).exists()


def test_check_finite_is_one_reusable_check_naming_every_bad_tensor():
    good = create("flextcn-2", 1, 10, width=4).state_dict()
    check_finite(good, "model.pt")
    bad = {**good, "head.bias": torch.tensor([1.0, float("nan"), float("-inf")])}
    assert non_finite(bad) == ["head.bias (1 NaN, 1 inf of 3)"]
    with pytest.raises(ValueError, match=r"^model.pt holds NaN or inf in 1 tensor: head.bias \(1 NaN, 1 inf of 3\)"):
        check_finite(bad, "model.pt")


# --- 2. a checkpoint carries its run's identity; another run's is refused --------------------------------------

def test_resume_refuses_another_run_s_checkpoint_naming_what_differs(runs, tmp_path, capsys):
    folder = copy(runs[0], tmp_path)
    shutil.copy(runs[1] / CHECKPOINT, folder / CHECKPOINT)         # seed 7's checkpoint into the seed-0 run
    metrics = (folder / "metrics.json").read_text()
    code, err = resume(folder, capsys)                              # was: continued silently with seed 7's numbers
    assert code == 2 and one_line_error(err) and "another run's checkpoint: seed 7 (this run: 0)" in err
    assert str(folder / CHECKPOINT) in err and "run id" in err
    assert (folder / "metrics.json").read_text() == metrics and not (folder / "summary.json").exists()


def test_the_previous_checkpoint_fallback_takes_only_the_run_s_own(runs, tmp_path, capsys):
    folder = copy(runs[0], tmp_path)
    (folder / CHECKPOINT).write_bytes(b"")
    shutil.copy(runs[1] / PREVIOUS, folder / PREVIOUS)
    code, err = resume(folder, capsys)
    assert code == 2 and one_line_error(err) and "is empty" in err and "another run's checkpoint: seed 7" in err


def test_a_checkpoint_without_identity_is_accepted_with_a_warning_only_in_an_old_run(runs, tmp_path, capsys):
    folder = copy(runs[0], tmp_path)
    for name in (CHECKPOINT, PREVIOUS):                             # as flexlib wrote them before identities
        state = checkpoint.load(folder / name)
        del state["identity"]
        checkpoint.save_atomic(state, folder / name, keep_previous=False)
    code, err = resume(folder, capsys, "--stop-after-epochs", "1")
    assert code == 2 and "carries no run identity but run" in err   # this run stamps its checkpoints
    meta = json.loads((folder / "metadata.json").read_text())
    del meta["run_id"]
    (folder / "metadata.json").write_text(json.dumps(meta))
    code, err = resume(folder, capsys)
    assert code == 0 and err.count("warning: ") == 1 and "carries no run identity (written by an older flexlib)" in err
    assert checkpoint.load(folder / CHECKPOINT)["identity"]["run_id"] is None     # new ones carry the old run's


def test_resume_from_python_with_another_config_is_refused_naming_the_keys(runs, tmp_path):
    folder = copy(runs[0], tmp_path)
    with pytest.raises(ConfigError, match=r"differs from the run's config.yaml in train.seed: 7 \(this run: 0\)"):
        run_experiment(tiny(tmp_path, seed=7), run_dir=folder, resume=True)
    run_experiment(tiny(tmp_path / "elsewhere"), run_dir=folder, resume=True)   # out_dir may change


# --- 3. every refusal of a file says what the file is and why, in one line ------------------------------------

class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _payloads(tmp_path, marker) -> dict[str, Path]:
    files = {"pickle": tmp_path / "pickle.pt", "torch": tmp_path / "torch.pt", "protocol0": tmp_path / "p0.pt"}
    files["pickle"].write_bytes(pickle.dumps({"model": Payload(marker)}, protocol=4))
    torch.save({"model": Payload(marker)}, files["torch"])
    files["protocol0"].write_bytes(pickle.dumps({"model": Payload(marker)}, protocol=0))
    return files


def test_a_payload_is_named_as_one_and_never_run_nor_weights_only_false_suggested(tmp_path, capsys):
    marker = tmp_path / "pwned"
    for kind, path in _payloads(tmp_path, marker).items():
        code, err = evaluate(capsys, path)                          # was: "not a readable torch checkpoint ..."
        assert code == 2 and one_line_error(err) and f"{path} {PAYLOAD}" in err, kind
        assert "weights_only" not in err and "Warning" not in err
    assert not marker.exists()


def test_a_payload_in_a_run_checkpoint_with_a_valid_hash_is_refused_the_same_way(runs, tmp_path):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"model": Payload(marker)}, buffer)
    payload = buffer.getvalue()
    data = weights.MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode() + payload
    with pytest.raises(CheckpointError, match=rf"^x.pt {PAYLOAD.replace('(', '[(]').replace(')', '[)]')}$"):
        checkpoint.decode(data, "x.pt")
    assert not marker.exists()


@pytest.mark.parametrize("kind, expected", [
    ("passwd", "is a text file, not a torch checkpoint (it starts with "),
    ("link", "(a link to "),
    ("random", "is not a torch checkpoint (it starts with the bytes "),
    ("empty", "is empty (0 bytes)"),
    ("folder", "is a folder, not a checkpoint file"),
    ("flexlib", "is a flexlib run checkpoint, not a plain torch file")])
def test_a_foreign_file_as_authors_checkpoint_is_one_line_saying_what_it_is(runs, tmp_path, capsys, kind, expected):
    text = tmp_path / "passwd"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    path = {"passwd": text, "link": tmp_path / "link.pt", "random": tmp_path / "random.pt",
            "empty": tmp_path / "empty.pt", "folder": tmp_path / "folder.pt", "flexlib": runs[0] / CHECKPOINT}[kind]
    if kind == "link":
        path.symlink_to(text)
    elif kind == "random":
        path.write_bytes(bytes(range(7, 256)) * 8)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    code, err = evaluate(capsys, path)                              # was: "unexpected IndexError: list index ..."
    assert code == 2 and one_line_error(err) and expected in err and str(path) in err


@pytest.mark.parametrize("state, message", [
    ({"cconv1.bias": "x"}, r"'cconv1.bias' must be a tensor, got str 'x'"),
    ({1: torch.ones(1)}, r"state dict keys must be str, got 1"),
    ({}, "is an empty state dict")])
def test_a_state_dict_of_wrong_values_is_flexlib_s_error_naming_the_key(state, message):
    with pytest.raises(AuthorsCheckpointError, match=message):    # was: AttributeError from inside flexlib
        from_authors_checkpoint(state, "flexnet-3", 3, 10)


def test_a_bytes_path_is_flexlib_s_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint: expected a str or os.PathLike path, got bytes .*os.fsdecode"):
        from_authors_checkpoint(os.fsencode(tmp_path / "x.pt"), "flexnet-3", 3, 10)
    with pytest.raises(TypeError, match=r"authors' checkpoint: expected a str or os.PathLike path, got int"):
        load_authors_state_dict(3)


# --- 4. sizes bounded before anything is allocated, the limit named ---------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--at", "100000"], "--at 100000: at most 1024 px (flexlib.engine.config.MAX_RESOLUTION)"),
    (["--set", "data.resolution=100000"], "data.resolution: 100000 is not allowed; expected an integer 1..1024")])
def test_the_resolution_is_bounded_before_any_allocation(tmp_path, capsys, args, message):
    _quick_checkpoint(tmp_path / "a.pt")
    code, err = evaluate(capsys, tmp_path / "a.pt", *args)         # was: "unexpected RuntimeError ... 120000000000"
    assert code == 2 and one_line_error(err) and message in err


@pytest.mark.parametrize("size", ["0", "10000000"])
def test_the_evaluation_batch_size_is_bounded(capsys, size):
    with pytest.raises(SystemExit) as exit_:
        evaluate(capsys, "x.pt", "--batch-size", size)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert f"--batch-size: expected an integer 1..65536 (flexlib.engine.config.MAX_BATCH_SIZE), got '{size}'" in err


def test_train_batch_sizes_are_bounded(tmp_path):
    params = params_file(tmp_path, tiny(tmp_path))
    for key in ("train.batch_size", "train.eval_batch_size"):
        with pytest.raises(ConfigError, match=rf"{key}: 100000 is not allowed; expected an integer 1..65536"):
            load_config(params, overrides=[f"{key}=100000"])


def test_an_allocation_that_fails_anyway_is_one_line_exit_2(monkeypatch, capsys):
    import flexlib.engine.evaluate as ev
    failure = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 120000000000 bytes. Error code 12 (Cannot allocate memory)")
    assert out_of_memory(failure) == "out of memory: tried to allocate 111.8 GiB; lower the batch size or the resolution"
    assert out_of_memory(RuntimeError("shapes do not match")) is None
    monkeypatch.setattr(ev, "evaluate_command", lambda args: (_ for _ in ()).throw(failure))
    code, err = evaluate(capsys, "x.pt")
    assert code == 2 and one_line_error(err) and "out of memory: tried to allocate 111.8 GiB" in err


# --- 5. seeds in range, model kwargs checked by flexlib with the kwarg named -----------------------------------

def test_a_seed_out_of_range_is_one_line_naming_the_range(tmp_path, capsys):
    params = params_file(tmp_path, tiny(tmp_path / "runs"))
    assert main(["train", str(params), "--set", "train.seed=100000000000000000000"]) == 2
    err = capsys.readouterr().err                                   # was: "Overflow when unpacking long long"
    assert one_line_error(err) and "train.seed: 100000000000000000000 is not allowed; expected an integer " \
                                   "0..4294967295 (2**32 - 1" in err
    assert load_config(params, overrides=["train.seed=4294967295"]).train.seed == 2**32 - 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, kwargs, message", [
    ("flextcn-2", {"dropout": 1.5}, "TCNConfig: dropout must be a probability in [0, 1), got 1.5"),
    ("flexnet-3", {"dropout": -0.1}, "FlexNetConfig: dropout must be a probability in [0, 1), got -0.1"),
    ("flextcn-2", {"width": 0}, "TCNConfig: width must be a positive integer, got 0"),
    ("flexnet-3", {"width_factors": [0.0]}, "FlexNetConfig: width_factors must be positive numbers"),
    ("flextcn-2", {"omega_0": -1.0}, "ConvConfig: omega_0 must be a finite real number in (0.0, inf), got -1.0"),
    ("flextcn-2", {"input_scale": float("nan")}, "ConvConfig: input_scale must be a finite real number"),
    ("flextcn-2", {"bias": "yes"}, "ConvConfig: bias must be one of True, False, got 'yes'"),
    ("flextcn-2", {"norm": "group"}, "TCNConfig: norm must be one of 'batch', 'layer', 'channel_layer'"),
    ("cifarresnet-20", {"widths": (0, 1, 2)}, "CIFARResNetConfig: widths must be 3 positive integers"),
    ("flexnet-3", {"conv": 3}, "conv must be a ConvConfig or a mapping of its fields, got int")])
def test_model_kwargs_are_checked_by_flexlib_naming_the_kwarg(name, kwargs, message):
    with pytest.raises((ValueError, TypeError)) as err:            # was: torch's ValueError from nn.Dropout
        create(name, 1, 10, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_model_kwarg_through_the_cli_is_one_line(tmp_path, capsys):
    params = params_file(tmp_path, tiny(tmp_path / "runs"))
    assert main(["train", str(params), "--set", "model.kwargs.dropout=1.5"]) == 2
    err = capsys.readouterr().err
    assert one_line_error(err) and "model.kwargs: TCNConfig: dropout must be a probability in [0, 1), got 1.5" in err


# --- 6. after a kill before the first checkpoint, --resume starts the run over in its folder -------------------

def _killed_before_the_first_checkpoint(cfg, folder, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save_atomic", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, "early", run_dir=folder)
    assert sorted(checkpoint.run_files(folder)) == ["config.yaml", "metadata.json"]


def test_resume_after_a_kill_before_the_first_checkpoint_starts_the_run_over(tmp_path, monkeypatch, capsys):
    cfg = tiny(tmp_path / "runs")
    folder = tmp_path / "early"
    _killed_before_the_first_checkpoint(cfg, folder, monkeypatch)
    run_id = json.loads((folder / "metadata.json").read_text())["run_id"]
    assert main(["train", params_file(tmp_path, cfg).as_posix(), "--run-dir", str(folder)]) == 2
    assert f"continue it with --resume {folder}" in capsys.readouterr().err
    code, err = resume(folder, capsys)                              # was: "start it again without --resume"
    assert code == 0 and f"note: {folder} has no checkpoint" in err and "starting it over there" in err
    whole = run_experiment(tiny(tmp_path / "whole"), "whole")
    assert strip(json.loads((folder / "metrics.json").read_text())) == strip(whole.history)
    assert json.loads((folder / "metadata.json").read_text())["run_id"] == run_id


def test_a_run_with_results_but_no_checkpoint_is_not_started_over(runs, tmp_path, capsys):
    folder = copy(runs[0], tmp_path)
    (folder / CHECKPOINT).unlink()
    (folder / PREVIOUS).unlink()
    metrics = (folder / "metrics.json").read_text()
    code, err = resume(folder, capsys)
    assert code == 2 and one_line_error(err) and "has no checkpoint" in err and "metrics.json" in err
    assert (folder / "metrics.json").read_text() == metrics
    with pytest.raises(FileNotFoundError, match=rf"--resume {folder}` starts it over"):
        load_model(folder)


def test_a_real_kill_9_before_the_first_checkpoint_then_resume_finishes_the_run(tmp_path):
    cfg = tiny(tmp_path / "runs", epochs=2, steps=40)
    params = params_file(tmp_path, cfg)
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    folder = tmp_path / "killed"
    victim = subprocess.Popen([sys.executable, "-m", "flexlib", "train", str(params), "--run-dir", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while victim.poll() is None and not (folder / "metadata.json").exists():
            time.sleep(0.002)
    finally:
        victim.kill()
        victim.wait()
    if checkpoint.has_checkpoint(folder):
        pytest.skip("the first epoch ended before the kill on this machine")
    out = subprocess.run([sys.executable, "-m", "flexlib", "train", "--resume", str(folder)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "starting it over" in out.stderr and (folder / "summary.json").exists()


# --- 7. notebook parameters name the unknown model and list the known ones ------------------------------------

def test_a_notebook_run_with_an_unknown_model_names_it_and_the_known_ones():
    row = "T3 FlexNet-16"
    with pytest.raises(ValueError) as err:                          # was: "runs must be [...] triples, got ..."
        paper_runs.plan(["3"], [[row, "flexnet-99", {}]])
    assert "runs[0]: model 'flexnet-99' is not allowed; expected one of the models (did you mean" in str(err.value)
    assert "flexnet-16, flexnet-16-conv3" in str(err.value)
    with pytest.raises(ValueError, match=r"runs\[0\]: model 'cifarresnet-20' .* one of the flexnet-\* models"):
        paper_runs.check_runs([[row, "cifarresnet-20", {}]], family="flexnet-")
    with pytest.raises(ValueError, match=r"runs\[1\] must be a \[protocol row, model, create\(\) kwargs\(, variant\)\] list"):
        paper_runs.check_runs([[row, "flexnet-3", {}], [row, "flexnet-3"]])
    with pytest.raises(ValueError, match=r"runs\[0\]: the variant \(fourth element\) must be a non-empty string, got 3"):
        paper_runs.check_runs([[row, "flexnet-3", {}, 3]])
    with pytest.raises(ValueError, match=r"runs\[0\]: no protocol row 'T3 FlexNet-61'"):
        paper_runs.check_runs([["T3 FlexNet-61", "flexnet-3", {}]])
    with pytest.raises(ValueError, match=r"runs\[0\]: flexnet-3 kwargs: unknown key 'widht'"):
        paper_runs.check_runs([[row, "flexnet-3", {"widht": 4}]])
    with pytest.raises(ValueError, match=r"seeds: 4294967296 is not allowed"):
        paper_runs.check_runs(None, [0, 2**32])


def test_every_notebook_parameter_file_passes_the_check():
    root = Path(__file__).resolve().parents[1] / "params" / "notebooks"
    for path in root.glob("*.yaml"):
        values = yaml.safe_load(path.read_text())
        if "runs" in values:
            paper_runs.check_runs(values["runs"], values.get("seeds"),
                                  family="flexnet-" if path.name.startswith("kernel_sizes") else "")
