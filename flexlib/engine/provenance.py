"""What produced a result: commit, versions of every installed package, device, CPU, the numerics in use
(instruction set, threads, deterministic algorithms), host, time. Written beside every run's metrics, every
notebook's results and every benchmark (one function for all three: `provenance`)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10,
                          check=True).stdout


def git_state() -> dict:
    """The commit of the flexlib code that runs and whether its tracked files outside results/ (where runs write)
    differ from it (untracked files included): {"git_commit": sha or "unknown", "git_tree_dirty": bool or None,
    "git_dirty_paths": [...]}. For a non-editable install (the package outside any checkout) the checkout of the
    working directory is described instead, and "git_source" says so."""
    candidates = [("package", Path(__file__).resolve().parent), ("working directory", Path.cwd())]
    for source, folder in candidates:
        try:
            top = Path(_git(folder, "rev-parse", "--show-toplevel").strip())
            if source == "package" and not (top / "flexlib" / "engine" / "provenance.py").is_file():
                continue
            commit = _git(top, "rev-parse", "HEAD").strip()
            status = _git(top, "status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude)results")
        except (OSError, subprocess.SubprocessError):
            continue
        paths = [line[3:] for line in status.splitlines()]
        out = {"git_commit": commit, "git_tree_dirty": bool(paths), "git_dirty_paths": paths[:20]}
        return out if source == "package" else {**out, "git_source": "the working directory's checkout"}
    return {"git_commit": "unknown", "git_tree_dirty": None, "git_dirty_paths": []}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_device(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


# The variables that pick the kernels (and so the rounding) of a CPU run; params/numerics.env pins them.
NUMERICS_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def numerics() -> dict:
    """What decides the rounding of this process's results: the instruction set ATen dispatches to, the variables
    of NUMERICS_ENV, torch's thread count and whether deterministic algorithms are on."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "env": {k: os.environ.get(k) for k in NUMERICS_ENV}, "torch_threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def packages() -> list[str]:
    """Every installed distribution as "name==version", sorted."""
    return sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                   if d.metadata["Name"]}, key=str.lower)


def provenance(device: str | torch.device = "cpu", world_size: int = 1) -> dict:
    from .. import __version__
    return {**git_state(), "flexlib": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "device": describe_device(device), "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "world_size": world_size, "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "numerics": numerics(), "packages": packages()}
