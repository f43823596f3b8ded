"""The same numbers on every run: a locked environment, pinned numerics that only select kernels, a notebook that gives
the same tables whatever the thread count around it, and a run killed with SIGKILL that resumes bit for bit."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from compare_results import compare_table  # noqa: E402

PINS = dict(line.split("=", 1) for line in (ROOT / "params" / "numerics.env").read_text().splitlines()
            if line and not line.startswith("#"))


def _lock() -> dict[str, tuple[str, list[str]]]:
    text = (ROOT / "requirements.lock").read_text()
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 4)[-1].strip()):
        name, _, rest = block.partition("==")
        version = rest.split()[0]
        entries[name.lower().replace("_", "-")] = (version, re.findall(r"--hash=sha256:([0-9a-f]{64})", rest))
    return entries


def test_the_lock_pins_every_dependency_with_a_hash_and_agrees_with_pyproject_and_environment_yml():
    import tomllib
    lock = _lock()
    assert len(lock) > 100 and all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", v) and len(h) == 1
                                   for v, h in lock.values())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted} - {"flexlib"}
    assert names - set(lock) == set(), "pyproject dependencies missing from requirements.lock"
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            assert lock[name.strip()][0] == version.strip()           # torch/torchvision as constraints.txt says
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    locked = re.search(r"^# python: (\S+)", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    assert python == f"python={locked}"
    assert {"pip": ["-r requirements.lock"]} in env["dependencies"]


PROBE = """
import json, torch
torch.manual_seed(0); torch.set_num_threads(1)
x = torch.randn(16, 24, 32, 32); w = torch.randn(24, 24, 5, 5)
outs = {"conv2d": torch.nn.functional.conv2d(x, w, padding=2), "mm": torch.randn(300, 300) @ torch.randn(300, 300),
        "sin": torch.randn(100000).sin(), "bn": torch.nn.BatchNorm2d(24)(x), "fft": torch.fft.rfft(torch.randn(9, 999))}
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                  **{k: v.abs().flatten().double().tolist()[:2000] for k, v in outs.items()}}))
"""


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _has_avx2(), reason="the pins name AVX2, which this CPU lacks")
def test_the_pinned_instruction_set_is_used_and_only_changes_rounding():
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    runs = {}
    for pinned in (False, True):
        out = subprocess.run([sys.executable, "-c", PROBE], env={**env, **(PINS if pinned else {})},
                             capture_output=True, text=True, timeout=300, check=True).stdout
        runs[pinned] = json.loads(out)
    assert runs[True]["capability"] == "AVX2"
    for op in ("conv2d", "mm", "sin", "bn", "fft"):
        a, b = torch.tensor(runs[False][op]), torch.tensor(runs[True][op])
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * b.abs().max()), op    # other kernels, same math


def _papermill(notebook: str, out: Path, threads: str) -> None:
    env = {**os.environ, **PINS, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    out.mkdir(parents=True)
    subprocess.run([str(Path(sys.executable).parent / "papermill"), "-k", "python3", "--cwd", "notebooks",
                    "-p", "output_dir", str(out), f"notebooks/{notebook}.ipynb", str(out / f"{notebook}.ipynb")],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=900)


def test_a_quick_notebook_run_with_one_or_two_threads_around_it_writes_identical_tables(tmp_path):
    for threads in ("1", "2"):
        _papermill("cifar", tmp_path / threads, threads)
    tables = sorted(p.name for p in (tmp_path / "1").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (tmp_path / "2").glob("*.csv"))
    for name in tables:
        compared, differing, notes = compare_table((tmp_path / "1" / name).read_text(),
                                                   (tmp_path / "2" / name).read_text())
        assert compared > 0 and differing == 0, (name, notes)
    meta = json.loads((tmp_path / "2" / "metadata.json").read_text())
    assert meta["numerics"]["env"]["ATEN_CPU_CAPABILITY"] == PINS["ATEN_CPU_CAPABILITY"]
    assert meta["numerics"]["torch_threads"] == 1 and meta["numerics"]["deterministic_algorithms"]
    assert any(p.startswith("torch==") for p in meta["packages"])


def _train(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "flexlib", "train", "params/experiments/cifar10.yaml", "--profile", "quick",
            "--set", "train.epochs=3", "--set", "data.train_size=128", "--set", "data.test_size=64"]
    return subprocess.Popen([*args, "--run-dir", str(run_dir), *extra] if not extra else
                            [sys.executable, "-m", "flexlib", "train", *extra], cwd=ROOT,
                            env={**os.environ, **PINS}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_run_killed_with_sigkill_resumes_bit_for_bit_in_the_default_settings(tmp_path):
    """The default settings: conv_mode "auto" and train.deterministic on, under which auto never times a path."""
    from flexlib.engine.checkpoint import load
    whole = _train(tmp_path / "whole")
    assert whole.wait(600) == 0, whole.stderr.read()
    killed = _train(tmp_path / "killed")
    metrics = tmp_path / "killed" / "metrics.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (metrics.exists() and json.loads(metrics.read_text() or "[]")):
        time.sleep(0.2)
    time.sleep(0.5)                                              # into the second epoch
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(60) == -signal.SIGKILL                  # killed, not finished
    assert load(tmp_path / "killed" / "checkpoint.pt")["epoch"] < 3
    resumed = _train(tmp_path / "killed", "--resume", str(tmp_path / "killed"))
    assert resumed.wait(600) == 0, resumed.stderr.read()
    a, b = (load(tmp_path / name / "checkpoint.pt") for name in ("whole", "killed"))
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(v, b["model"][k]) if isinstance(v, torch.Tensor) else v == b["model"][k]
               for k, v in a["model"].items()), "weights differ after the resume"
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(a["history"]) == strip(b["history"])


def test_the_comparison_names_the_numbers_that_differ_and_leaves_timings_alone():
    committed = "model,acc,seconds,median_ms\nflexnet,0.75,12.0,3.5\nk3,0.625,11.0,2.0\n"
    assert compare_table(committed, committed) == (4, 0, [])
    timings_only = committed.replace("12.0", "13.1").replace("2.0\n", "2.7\n")
    assert compare_table(timings_only, committed)[1] == 0
    n, differing, notes = compare_table(committed.replace("0.625", "0.6"), committed)
    assert (n, differing) == (4, 1) and notes == ["acc (largest |Δ| 0.025)"]
    assert compare_table(committed.replace("k3", "k5"), committed)[2] == ["model (text)"]
    assert compare_table("model,acc\nflexnet,0.75\n", committed)[1] == 1            # another shape
    tests = "a,b,mean_a,p_welch,measure\nmask,frame,0.00034,0.36,region MSE\nmask,frame,14.6,1e-05,ms per iteration\n"
    assert compare_table(tests.replace("14.6", "16.2").replace("1e-05", "3e-05"), tests) == (5, 0, [])
    assert compare_table(tests.replace("0.36", "0.37"), tests)[2] == ["p_welch (largest |Δ| 0.01)"]
    per_fit = "variant,region_mse,ms_per_iteration\nwindow,0.0001,9.3\n"
    assert compare_table(per_fit.replace("9.3", "12.1"), per_fit) == (2, 0, [])


def test_with_deterministic_algorithms_auto_never_times_a_path(monkeypatch):
    import flexlib.layers.path_choice as path_choice
    from flexlib import FlexConv
    monkeypatch.setattr(path_choice, "TIMER", path_choice.PathTimer())
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        for conv, x in ((FlexConv(48, 48, 1, causal=True), torch.randn(64, 48, 64)),      # a near tie in 1-D
                        (FlexConv(2, 2, 3), torch.randn(1, 2, 5, 5, 5))):                # 3-D: always timed before
            conv(x)
            assert conv.last_conv_mode in ("spatial", "fft")
    finally:
        torch.use_deterministic_algorithms(previous)
    assert path_choice.TIMER.choices == {}
