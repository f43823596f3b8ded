"""What produced a result: versions, commit, device, time. Written beside every metrics file."""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import torch


def git_commit() -> str:
    """The flexlib checkout's commit (+ '-dirty' with uncommitted changes), or 'unknown' outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device, world_size: int) -> dict:
    return {"flexlib_commit": git_commit(), "torch": torch.__version__, "python": sys.version.split()[0],
            "device": describe_device(device), "world_size": world_size, "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
