"""A run's folder: claimed once (never another run's), locked while a process trains in it, written atomically."""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:                # not POSIX: runs are not locked
    fcntl = None

LOCK = ".lock"


class RunDirError(ValueError):
    """A run folder that cannot be used as asked (it holds another run, or another process uses it)."""


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK)


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
