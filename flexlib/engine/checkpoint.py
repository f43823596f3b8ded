"""Checkpoints that are data, verified, and never lost; the run folders they live in; reading a run back.

Format: one header line ``FLEXLIB-CHECKPOINT 1 sha256=<hex> bytes=<n>`` then the payload of ``torch.save``. Loading
checks the length and the SHA-256 of the payload before ``torch.load(weights_only=True)`` reads it, so a truncated,
damaged or foreign file is refused with its name and the reason, and a file holding code is never unpickled.
Saving is atomic (temporary file in the same folder, fsync, ``os.replace``) and keeps the checkpoint it replaces as
``<name>.prev.pt``, so that a run can resume from it when the latest is unusable. A run checkpoint carries its run's
identity (run id, seed, SHA-256 of config.yaml): a run continues only from its own, and NaN or inf weights are
refused (flexlib.models.weights.check_finite).

A run's folder is claimed once (never another run's), locked while a process trains in it, and written atomically.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .config import ConfigError, ExperimentConfig, from_dict, read_yaml, YAMLError
from ..data import ClassificationData, build
from ..models.export import from_state, run_model, save
from ..models.weights import check_finite, read_verified, verified

try:
    import fcntl
except ImportError:                # not POSIX: runs are not locked
    fcntl = None


# -- the checkpoint file -----------------------------------------------------------------------------------------------


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


def encode(obj) -> bytes:
    header, payload = verified(obj)
    return header + bytes(payload)


def decode(data: bytes, path: str | Path = "<bytes>", map_location="cpu"):
    """The object in checkpoint bytes ``data``, after checking header, length and hash."""
    return read_verified(data, str(path), map_location, error=CheckpointError)


def save_atomic(obj, path: str | Path, keep_previous: bool = True) -> Path:
    """Write ``obj`` to ``path`` so that ``path`` always holds a whole checkpoint; the replaced one is kept as
    ``previous_path(path)`` (a hard link, so some valid checkpoint exists at every moment)."""
    path = Path(path)
    header, payload = verified(obj)
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


class ForeignCheckpointError(CheckpointError):
    """A checkpoint of another run (its identity differs from the run folder's): never used, never a fallback."""


def load_latest(path: str | Path, map_location="cpu", check=None) -> tuple[dict, Path]:
    """The checkpoint at ``path``, or, when it is missing or unusable, the previous one with a CheckpointWarning.

    ``check(obj, path)`` raises CheckpointError for a checkpoint that reads but cannot be used (then the previous
    one is tried), ForeignCheckpointError for another run's (refused, no fallback). Returns the object and the file
    it came from; raises CheckpointError naming both files when neither is usable, FileNotFoundError when there is
    none."""
    path = Path(path)
    previous = previous_path(path)
    if not path.exists() and not previous.exists():
        raise FileNotFoundError(f"no checkpoint in {path.parent} (neither {path.name} nor {previous.name})")

    def checked(file: Path):
        obj = load(file, map_location)
        if check is not None:
            check(obj, file)
        return obj
    try:
        return checked(path), path
    except ForeignCheckpointError:
        raise
    except (CheckpointError, FileNotFoundError) as err:
        latest_problem = str(err)
    try:
        state = checked(previous)
    except (CheckpointError, FileNotFoundError) as err:
        raise CheckpointError(f"no usable checkpoint: {latest_problem}; and {err}") from None
    warnings.warn(CheckpointWarning(f"{latest_problem}; using the previous checkpoint {previous} instead"),
                  stacklevel=2)
    return state, previous


# -- run folders -------------------------------------------------------------------------------------------------------
LOCK = ".lock"


class RunDirError(ValueError):
    """A run folder that cannot be used as asked (it holds another run, or another process uses it)."""


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK)


def run_files(path: Path) -> list[str]:
    """What a run folder holds, without its lock and hidden temporaries."""
    return [n for n in _contents(path) if not n.startswith(".")]


def claim(run_dir: str | Path | None, out_dir: str | Path, name: str) -> tuple[Path, bool]:
    """A folder for a new run: ``run_dir`` if it does not exist or is empty, else ``<out_dir>/<name>-<time>[-k]``.

    Returns the folder and whether it was created here. Never returns a folder that holds anything."""
    if run_dir is not None:
        path = Path(run_dir)
        if path.exists():
            if not path.is_dir():
                raise RunDirError(f"run folder {path} is a file, not a folder")
            if _contents(path):
                raise RunDirError(f"run folder {path} already exists and is not empty ({', '.join(_contents(path)[:4])}"
                                  f"{', ...' if len(_contents(path)) > 4 else ''}); flexlib never overwrites a run: "
                                  f"continue it with --resume {path}, or choose another --run-dir")
            return path, False
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            raise RunDirError(f"run folder {path} was just created by another process; choose another --run-dir") \
                from None
        return path, True
    base = Path(out_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1, 1000):
        path = base if k == 1 else Path(f"{base}-{k}")
        try:
            path.mkdir(parents=True)
            return path, True
        except FileExistsError:
            continue
    raise RunDirError(f"could not find a free run folder name next to {base}")


def remove_if_created(path: Path, created: bool) -> None:
    """Undo ``claim`` after a failed start: a folder made for a run that never started is removed."""
    if created and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(path: Path, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on run folder ``path`` (a second process training in it is refused). The lock goes
    with the process, also after kill -9."""
    if not enabled or fcntl is None:
        yield
        return
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(f"run folder {path} is in use by another flexlib process (pid {holder}); wait for it "
                              f"to end or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def ensure_empty(path: Path) -> None:
    """Refuse ``path`` if a run appeared in it between claim and lock."""
    if _contents(path):
        raise RunDirError(f"run folder {path} was filled by another process meanwhile; choose another --run-dir")


def remove_temporaries(path: Path) -> list[Path]:
    """Delete the half-written ``.<file>.tmp<pid>`` files a killed process left (call with the lock held)."""
    stray = [p for p in path.glob(".*.tmp*") if p.is_file()]
    for p in stray:
        p.unlink(missing_ok=True)
    return stray


def write_text(path: Path, text: str) -> None:
    """Replace ``path``'s content in one step: readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- reading a run back ------------------------------------------------------------------------------------------------
CHECKPOINT = "checkpoint.pt"
STATE_KEYS = {"model": dict, "optimizer": dict, "scheduler": dict, "stage": int, "epoch": int, "rng": dict,
              "history": list}


@dataclass
class Stage:
    name: str                      # "train", or "finetune" at the target resolution (Sec. 4.3)
    epochs: int
    resolution: int | None


def stages_of(cfg: ExperimentConfig) -> list[Stage]:
    if cfg.resolution is None:
        return [Stage("train", cfg.train.epochs, cfg.data.resolution)]
    return [Stage("train", cfg.train.epochs, cfg.resolution.source),
            Stage("finetune", cfg.resolution.finetune_epochs, cfg.resolution.target)]


def default_model(cfg: ExperimentConfig, data: ClassificationData) -> nn.Module:
    from ..models import create
    try:
        return create(cfg.model.name, data.in_channels, data.num_classes, **cfg.model.kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model.kwargs: {cfg.model.name} with {cfg.model.kwargs} cannot be built: "
                          f"{' '.join(str(err).split())}") from err


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a flexlib run folder: no config.yaml in it")
    try:
        raw = read_yaml(path)
    except YAMLError as err:
        raise ConfigError(str(err)) from None
    return from_dict(ExperimentConfig, raw, where=str(path))


def initial_model(cfg: ExperimentConfig) -> nn.Module:
    """The model `run_experiment(cfg)` starts training from: the same config and seed, so the same initial weights."""
    data = build(replace(cfg.data, resolution=stages_of(cfg)[0].resolution), cfg.train.seed)
    torch.manual_seed(cfg.train.seed)
    return default_model(cfg, data)


# -- a run's identity: which run a checkpoint belongs to ---------------------------------------------------------------
def config_sha256(config: dict) -> str:
    """The SHA-256 of a run's config as canonical JSON (sorted keys): the same for the same config.yaml content."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_identity(run_dir: str | Path) -> dict:
    """The identity of the run in ``run_dir``, stamped on its checkpoints: its run id (metadata.json; None in a
    run started by an older flexlib), its seed and the SHA-256 of its config.yaml, and the config itself (so that
    a refusal can name the keys that differ)."""
    run_dir = Path(run_dir)
    try:
        raw = read_yaml(run_dir / "config.yaml")
    except YAMLError as err:
        raise ConfigError(str(err)) from None
    raw = raw if isinstance(raw, dict) else {}
    try:
        meta = json.loads((run_dir / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    return {"run_id": meta.get("run_id") if isinstance(meta, dict) else None, "seed": train.get("seed", 0),
            "config_sha256": config_sha256(raw), "config": raw}


def _flat(config, prefix: str = "") -> dict:
    if not isinstance(config, dict):
        return {prefix: config}
    return {k: v for key, value in config.items() for k, v in _flat(value, f"{prefix}.{key}" if prefix else
                                                                      str(key)).items()}


def config_differences(found, expected, ignore=()) -> list[str]:
    """The dotted keys where two configs differ, each as "key: found (this run: expected)"."""
    a, b = _flat(found if isinstance(found, dict) else {}), _flat(expected if isinstance(expected, dict) else {})
    keys = [k for k in dict.fromkeys([*b, *a]) if a.get(k) != b.get(k) and k not in ignore]
    return [f"{k}: {a.get(k)!r} (this run: {b.get(k)!r})" for k in keys]


def check_identity(state: dict, expected: dict, path: Path) -> None:
    """Refuse the checkpoint of another run (ForeignCheckpointError naming what differs). A checkpoint without an
    identity (flexlib before identities) is accepted with a warning in a run folder of that age, refused in a run
    that stamps its checkpoints."""
    found = state.get("identity")
    if found is None:
        if expected["run_id"] is not None:
            raise ForeignCheckpointError(f"{path} carries no run identity but run {expected['run_id'][:12]} stamps "
                                         f"every checkpoint it writes: it is not this run's checkpoint")
        warnings.warn(CheckpointWarning(f"{path} carries no run identity (written by an older flexlib); it is taken "
                                        f"to be this run's without a check of its config and seed"), stacklevel=3)
        return
    if not isinstance(found, dict):
        raise ForeignCheckpointError(f"{path} has a malformed run identity ({type(found).__name__})")
    differ = []
    if found.get("seed") != expected["seed"]:
        differ.append(f"seed {found.get('seed')!r} (this run: {expected['seed']!r})")
    if found.get("config_sha256") != expected["config_sha256"]:
        keys = [d for d in config_differences(found.get("config"), expected["config"])
                if not d.startswith("train.seed:")]
        differ.append(f"config {str(found.get('config_sha256'))[:12]} (this run: {expected['config_sha256'][:12]})"
                      + (f", in {'; '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}" if keys else ""))
    if found.get("run_id") != expected["run_id"]:
        differ.append(f"run id {str(found.get('run_id'))[:12]} (this run: {str(expected['run_id'])[:12]})")
    if differ:
        raise ForeignCheckpointError(f"{path} is another run's checkpoint: {'; '.join(differ)}. A run continues "
                                     f"only from its own checkpoints: put this run's back, or train that config as "
                                     f"a run of its own")


def check_run_checkpoint(state, path: Path, identity: dict, keys: dict = STATE_KEYS) -> None:
    """A run checkpoint that can be used: the keys of ``keys`` with their types, this run's identity, finite
    model and optimizer state (flexlib.models.weights.check_finite)."""
    state = state if isinstance(state, dict) else {}
    wrong = [k for k, kind in keys.items() if not isinstance(state.get(k), kind)]
    if wrong:
        raise CheckpointError(f"{path} is not a run checkpoint: missing or wrong {wrong}")
    check_identity(state, identity, path)
    check_finite({k: state[k] for k in ("model", "optimizer") if k in state}, str(path), CheckpointError)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINT).exists() or previous_path(run_dir / CHECKPOINT).exists()


def load_state(run_dir: Path, map_location="cpu") -> dict:
    """The run's latest usable checkpoint (the previous one, with a warning, when the latest is unusable); only
    this run's checkpoints are used (`check_identity`)."""
    identity = run_identity(run_dir)
    if not has_checkpoint(run_dir):
        raise FileNotFoundError(f"no checkpoint in {run_dir}: the run stopped before finishing its first epoch; "
                                f"`python -m flexlib train --resume {run_dir}` starts it over")
    state, path = load_latest(run_dir / CHECKPOINT, map_location,
                              check=lambda obj, file: check_run_checkpoint(obj, file, identity))
    state["path"] = path
    return state


def load_weights(model: nn.Module, state: dict) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{state['path']} does not fit the model of the run's config.yaml: "
                                         f"{' '.join(str(err).split())[:300]}") from None


def change_resolution(model: nn.Module, source_res: int, target_res: int) -> None:
    """Prepare a model trained at `source_res` px for `target_res` px, as the authors' run_crossres.py does: every
    FlexConv/CKConv's kernel × (r₁/r₂)^D (eq. 9) and every N-Jet's σ × r₂/r₁; discrete kernels keep their pixels."""
    from ..layers.flexconv import FlexConv
    from ..models.njet import retarget_njets
    if any(isinstance(m, FlexConv) for m in model.modules()):
        from ..layers.resolution import retarget
        retarget(model, source_res, target_res)
    retarget_njets(model, source_res, target_res)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a run as its latest usable checkpoint left it (after its last finished epoch), in eval mode:
    the model its metadata.json names, holding the checkpoint's weights (flexlib.models.export.from_state; the state dict
    keeps the resolution factors of a run past a resolution change)."""
    run_dir = Path(run_dir)
    state = load_state(run_dir, map_location=device)
    return from_state(run_model(run_dir)[0], state["model"], str(state["path"])).to(device)


def export_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the model of a run (its latest usable checkpoint) as an export that plain PyTorch opens
    (flexlib.models.export): `out`, or <run_dir>/export.pt. The run's verified checkpoints stay as they are."""
    run_dir = Path(run_dir)
    state = load_state(run_dir)
    create, meta = run_model(run_dir)
    model = from_state(create, state["model"], str(state["path"]))
    source = {"run": str(run_dir.name), "run_id": meta.get("run_id"), "dataset": meta.get("dataset"),
              "stage": state["stage"], "epoch": state["epoch"],
              "weights_of_epoch": state.get("weights_of_epoch", state["epoch"]),
              "test_acc": next((h.get("test_acc") for h in reversed(state["history"])
                                if h.get("epoch") == state.get("weights_of_epoch", state["epoch"])), None),
              "git_commit": meta.get("git_commit")}
    return save(model, Path(out) if out is not None else run_dir / "export.pt", create, source)
