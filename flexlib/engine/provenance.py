"""What produced a result: versions, commit, device, time. Written beside every metrics file."""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import torch


def git_state() -> dict:
    """The flexlib checkout's commit and whether its tracked files outside results/ (where runs write) differ from
    that commit (untracked files included): {"git_commit": sha or "unknown", "git_tree_dirty": bool or None, "git_dirty_paths": [...]}."""
    here = Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        commit = subprocess.run(["git", "-C", top, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=normal", "--", ".",
                                 ":(exclude)results"], capture_output=True, text=True, timeout=10, check=True)
        paths = [line[3:] for line in status.stdout.splitlines()]
        return {"git_commit": commit, "git_tree_dirty": bool(paths), "git_dirty_paths": paths[:20]}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_tree_dirty": None, "git_dirty_paths": []}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device, world_size: int) -> dict:
    return {**git_state(), "torch": torch.__version__, "python": sys.version.split()[0],
            "device": describe_device(device), "world_size": world_size, "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
