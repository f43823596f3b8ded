"""Checkpoints that are data, verified, and never lost.

Format: one header line ``FLEXLIB-CHECKPOINT 1 sha256=<hex> bytes=<n>`` then the payload of ``torch.save``. Loading
checks the length and the SHA-256 of the payload before ``torch.load(weights_only=True)`` reads it, so a truncated,
damaged or foreign file is refused with its name and the reason, and a file holding code is never unpickled.
Saving is atomic (temporary file in the same folder, fsync, ``os.replace``) and keeps the checkpoint it replaces as
``<name>.prev.pt``, so that a run can resume from it when the latest is unusable.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

MAGIC = b"FLEXLIB-CHECKPOINT 1 "
_HEADER = re.compile(rb"FLEXLIB-CHECKPOINT 1 sha256=([0-9a-f]{64}) bytes=(\d+)\n")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and why."""


class CheckpointWarning(UserWarning):
    """The latest checkpoint was unusable and the previous one is used instead."""


def rng_state() -> dict:
    """Every RNG a run draws from, as tensors and plain values (loadable with weights_only=True)."""
    np_state = np.random.get_state(legacy=False)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint that ``path`` replaced is kept: checkpoint.pt -> checkpoint.prev.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _serialize(obj) -> tuple[bytes, memoryview]:
    """The header line and the payload (torch.save's bytes) of a checkpoint of ``obj``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    return MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode(), payload


def encode(obj) -> bytes:
    header, payload = _serialize(obj)
    return header + bytes(payload)


def decode(data: bytes, path: str | Path = "<bytes>", map_location="cpu"):
    """The object in checkpoint bytes ``data``, after checking header, length and hash."""
    if not data:
        raise CheckpointError(f"{path} is empty (0 bytes)")
    match = _HEADER.match(data[:200])
    if not match:
        raise CheckpointError(f"{path} is not a flexlib checkpoint (no 'FLEXLIB-CHECKPOINT 1' header: damaged, "
                              f"or written by another program or an older flexlib)")
    expected, size = match.group(1).decode(), int(match.group(2))
    payload = memoryview(data)[match.end():]
    if len(payload) != size:
        raise CheckpointError(f"{path} is truncated or extended: {len(payload)} payload bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest() != expected:
        raise CheckpointError(f"{path} is damaged: the SHA-256 of its content does not match the one written with it")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path} was refused: it holds objects other than tensors and plain data{what}, "
                              f"which could run code when loaded") from None
    except (RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path} cannot be read: {' '.join(str(err).split())[:200]}") from None


def save_atomic(obj, path: str | Path, keep_previous: bool = True) -> Path:
    """Write ``obj`` to ``path`` so that ``path`` always holds a whole checkpoint; the replaced one is kept as
    ``previous_path(path)`` (a hard link, so some valid checkpoint exists at every moment)."""
    path = Path(path)
    header, payload = _serialize(obj)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            previous = previous_path(path)
            previous.unlink(missing_ok=True)
            try:
                os.link(path, previous)
            except OSError:                 # file systems without hard links
                os.replace(path, previous)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path: str | Path, map_location="cpu"):
    """The object in checkpoint file ``path``, verified (CheckpointError otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return decode(path.read_bytes(), path, map_location)


def load_latest(path: str | Path, map_location="cpu") -> tuple[dict, Path]:
    """The checkpoint at ``path``, or, when it is missing or unusable, the previous one with a CheckpointWarning.

    Returns the object and the file it came from; raises CheckpointError naming both files when neither is usable,
    FileNotFoundError when there is none."""
    path = Path(path)
    previous = previous_path(path)
    if not path.exists() and not previous.exists():
        raise FileNotFoundError(f"no checkpoint in {path.parent}: the run stopped before finishing its first epoch; "
                                f"start it again without --resume")
    try:
        return load(path, map_location), path
    except (CheckpointError, FileNotFoundError) as err:
        latest_problem = str(err)
    try:
        state = load(previous, map_location)
    except (CheckpointError, FileNotFoundError) as err:
        raise CheckpointError(f"no usable checkpoint: {latest_problem}; and {err}") from None
    warnings.warn(CheckpointWarning(f"{latest_problem}; using the previous checkpoint {previous} instead"),
                  stacklevel=2)
    return state, previous
