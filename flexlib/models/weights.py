"""Weights files read safely: tensors and plain data only, never code; finite values only.

Every loader of weights in flexlib (the authors' checkpoints, the engine's run checkpoints, exports) reads through
`read_tensors` and checks what it read with `check_finite`, so that a refusal is one line that says what the file
is and why: a file of Python objects is refused without running it (``torch.load(weights_only=True)``, and the
message never suggests ``weights_only=False``), a text or foreign file is named as such, a NaN or inf weight is
named with its tensor.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

import torch


class WeightsError(ValueError):
    """Weights that cannot be used; the message names the file or state, what it is and why."""


PAYLOAD = "holds Python objects other than tensors{what}; refused without running it"
# what torch.load(weights_only=True) accepts in a torch file: its own tensor rebuilders and plain containers
_SAFE_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.set", "builtins.frozenset", "builtins.bytearray",
                 "_codecs.encode")


def as_path(value, what: str = "path") -> Path:
    """``value`` as a Path: a str or an os.PathLike; bytes and other types are refused in one line."""
    if isinstance(value, bytes):
        raise TypeError(f"{what}: expected a str or os.PathLike path, got bytes {value[:60]!r}; decode it first "
                        f"(os.fsdecode(path))")
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what}: expected a str or os.PathLike path, got {type(value).__name__} {value!r:.60}")
    path = Path(value)
    if not str(value):
        raise ValueError(f"{what}: the path is empty")
    return path


def _named(path: Path) -> str:
    """The path as given, and where it leads when it is a symbolic link."""
    return f"{path} (a link to {path.resolve()})" if path.is_symlink() else str(path)


def read_file(path: str | os.PathLike, what: str = "checkpoint", error: type[Exception] = WeightsError) -> bytes:
    """The bytes of weights file ``path``; a missing file, a folder or an unreadable file in one line."""
    path = as_path(path, what)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {_named(path)}" if path.is_symlink() else f"no {what} at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise error(f"{what} {_named(path)} is not a regular file (a device, pipe or socket)")
    try:
        return path.read_bytes()
    except OSError as err:
        raise OSError(f"cannot read {what} {_named(path)}: {err.strerror or err}") from None


def _kind(data: bytes) -> str | None:
    """What a file is, from its first bytes, when it is not something torch.load reads: None for a torch file."""
    head = data[:64]
    if not data:
        return "is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):   # torch's zip format, or a pickle
        return None
    names, complete = _pickle_globals(data)
    if complete and _unsafe(names):                                   # a pickle of protocol 0 or 1
        return PAYLOAD.format(what=_listed(_unsafe(names)))
    if head.startswith(b"FLEXLIB-CHECKPOINT"):
        return ("is a flexlib run checkpoint, not a plain torch file; read a run with flexlib.engine.load_model("
                "<run folder>)")
    try:
        text = data[:256].decode("utf-8")
    except UnicodeDecodeError:
        return f"is not a torch checkpoint (it starts with the bytes {head[:8].hex(' ')})"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"is a text file, not a torch checkpoint (it starts with {first!r})"


def _pickle_globals(data: bytes) -> tuple[list[str], bool]:
    """The Python objects ("module.name") the first pickle in ``data`` would import, found by reading its opcodes
    (pickletools.genops parses, it never runs anything), and whether that pickle was read to its end."""
    found, strings, complete = [], [], False
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
            if op.name == "STOP":
                complete = True
                break
    except Exception:             # not a pickle, or a damaged one: what was read so far
        pass
    return list(dict.fromkeys(found)), complete


def _globals_of(data: bytes) -> list[str]:
    """The Python objects a torch file's pickle would import: data.pkl of a zip-format file (read, not
    decompressed beyond 64 MiB), else the file's first pickle; those torch allows are left out."""
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                with archive.open(name) as f:
                    data = f.read(64 * 2**20)
        except (zipfile.BadZipFile, StopIteration, OSError, RuntimeError, ValueError, EOFError):
            return []
    return _unsafe(_pickle_globals(data)[0])


def _unsafe(names: list[str]) -> list[str]:
    return [n for n in names if not n.startswith(_SAFE_GLOBALS)]


def _listed(names: list[str]) -> str:
    return f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""


def _reason(err: Exception) -> str:
    """torch's error in a few words, without its advice to load with weights_only=False."""
    text = " ".join(str(err).split())
    if not text or "weights_only" in text or "Weights only" in text:
        return type(err).__name__
    return text[:160]


def read_tensors(source: str | os.PathLike | bytes, name: str | None = None, map_location="cpu",
                 error: type[Exception] = WeightsError, what: str = "checkpoint"):
    """The object in a torch file (a path, or the file's bytes with ``name`` naming it), read with
    ``torch.load(weights_only=True)``: tensors and plain containers only. Anything else is ``error`` in one line:
    a file that holds other Python objects (refused without running it), a text file, a damaged file."""
    if isinstance(source, (bytes, bytearray, memoryview)) and name is not None:
        data = bytes(source)
    else:
        path = as_path(source, what)
        data, name = read_file(path, what, error), _named(path)
    kind = _kind(data)
    if kind is not None:
        raise error(f"{name} {kind}")
    try:
        with warnings.catch_warnings():      # torch's notes on foreign pickles: the refusal below says it all
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        named = _globals_of(data) or re.findall(r"GLOBAL ([\w.]+)", str(err))
        if named or "global" in str(err).lower():
            raise error(f"{name} {PAYLOAD.format(what=_listed(named))}") from None
        raise error(f"{name} is not a readable torch checkpoint (damaged, or a pickle torch.save did not write): "
                    f"{_reason(err)}") from None
    except MemoryError:
        raise
    except Exception as err:     # torch's readers fail on foreign bytes with any error: IndexError, KeyError, ...
        named = _globals_of(data)
        if named:
            raise error(f"{name} {PAYLOAD.format(what=_listed(named))}") from None
        raise error(f"{name} is not a readable torch checkpoint (damaged, or written by another program): "
                    f"{_reason(err)}") from None


# -- the verified format of run checkpoints ----------------------------------------------------------------------------
# One header line ``FLEXLIB-CHECKPOINT 1 sha256=<hex> bytes=<n>``, then torch.save's bytes: a truncated, extended or
# damaged file is refused before torch reads a byte of it (flexlib.engine.checkpoint writes them atomically).
MAGIC = b"FLEXLIB-CHECKPOINT 1 "
_HEADER = re.compile(rb"FLEXLIB-CHECKPOINT 1 sha256=([0-9a-f]{64}) bytes=(\d+)\n")


def verified(obj) -> tuple[bytes, memoryview]:
    """The header line and the payload (torch.save's bytes) of a verified file of ``obj``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    return MAGIC + f"sha256={hashlib.sha256(payload).hexdigest()} bytes={len(payload)}\n".encode(), payload


def read_verified(data: bytes, name: str, map_location="cpu", error: type[Exception] = WeightsError):
    """The object in verified file bytes ``data`` (``name`` names the file), after checking header, length and
    hash; then read as `read_tensors` reads (tensors and plain data only)."""
    if not data:
        raise error(f"{name} is empty (0 bytes)")
    match = _HEADER.match(data[:200])
    if not match:
        raise error(f"{name} is not a flexlib checkpoint (no 'FLEXLIB-CHECKPOINT 1' header: damaged, or written by "
                    f"another program or an older flexlib)")
    expected, size = match.group(1).decode(), int(match.group(2))
    payload = memoryview(data)[match.end():]
    if len(payload) != size:
        raise error(f"{name} is truncated or extended: {len(payload)} payload bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest() != expected:
        raise error(f"{name} is damaged: the SHA-256 of its content does not match the one written with it")
    return read_tensors(payload, name, map_location, error=error)


# -- finite values ---------------------------------------------------------------------------------------------------
def tensors_in(obj, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in nested dicts and lists, with its dotted key ("model.blocks.0.conv1.bias")."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from tensors_in(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from tensors_in(value, f"{prefix}.{i}" if prefix else str(i))


def non_finite(tensors) -> list[str]:
    """The floating-point tensors of ``tensors`` (a state dict, or nested dicts and lists of tensors) that hold NaN
    or ±inf, each as "name (k NaN, j inf of n)"; empty when every value is finite."""
    bad = []
    for key, t in tensors_in(tensors):
        if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
            continue
        finite = torch.isfinite(t)
        if bool(finite.all()):
            continue
        nan = int(torch.isnan(t).sum())
        counts = [f"{nan} NaN" if nan else "", f"{t.numel() - int(finite.sum()) - nan} inf" if
                  t.numel() - int(finite.sum()) - nan else ""]
        bad.append(f"{key} ({', '.join(c for c in counts if c)} of {t.numel()})")
    return bad


def check_finite(tensors, source: str, error: type[Exception] = WeightsError) -> None:
    """Refuse weights or buffers that hold NaN or ±inf, naming the tensors: such a model computes NaN or
    meaningless outputs (an 8 % accuracy, a loss of nan) without any other sign. ``source`` names the file or
    state in the message. The one check every loader of weights calls (authors' checkpoints, run checkpoints,
    exports)."""
    bad = non_finite(tensors)
    if bad:
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        raise error(f"{source} holds NaN or inf in {len(bad)} tensor{'s' if len(bad) > 1 else ''}: "
                    f"{'; '.join(bad[:4])}{more}; refused: a model with non-finite weights computes meaningless "
                    f"results")


def check_state_dict(state, source: str, error: type[Exception] = WeightsError) -> dict[str, torch.Tensor]:
    """``state`` checked as a state dict: a non-empty mapping of str keys to tensors (the first wrong entry is
    named), every floating value finite."""
    if not isinstance(state, Mapping):
        raise error(f"{source} is not a state dict: expected a mapping of names to tensors, got "
                    f"{type(state).__name__}")
    if not state:
        raise error(f"{source} is an empty state dict: it holds no tensors")
    for key, value in state.items():
        if not isinstance(key, str):
            raise error(f"{source}: state dict keys must be str, got {key!r} ({type(key).__name__})")
        if not isinstance(value, torch.Tensor):
            raise error(f"{source}: {key!r} must be a tensor, got {type(value).__name__} {value!r:.40}")
    check_finite(state, source, error)
    return dict(state)
