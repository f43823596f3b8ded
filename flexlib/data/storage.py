"""Where datasets live on disk: root resolution, missing-dataset errors, checksums, safe extraction."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
import zlib
from pathlib import Path


class MissingDatasetError(FileNotFoundError):
    """A dataset is not on disk; the message says where it was looked for and how to get it."""

    def __init__(self, dataset: str, looked_in: Path | str, how_to_get: str):
        self.dataset, self.looked_in = dataset, Path(looked_in)
        super().__init__(f"dataset {dataset!r} not found at {looked_in}. To get it: {how_to_get}. "
                         f"Point flexlib elsewhere with data.root=... or the FLEXLIB_DATA environment variable; "
                         f"the quick profiles use offline stand-ins (data.offline=true).")


class DatasetFormatError(ValueError):
    """A dataset file exists but does not hold what its format promises; the message names the file and what was
    expected."""

    def __init__(self, path: Path | str, expected: str, found: str = ""):
        self.path = Path(path)
        super().__init__(f"{path} is not a valid dataset file: expected {expected}"
                         + (f", found {found}" if found else "") + ". Delete it and fetch it again.")


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: the argument, else $FLEXLIB_DATA, else ~/.cache/flexlib."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("FLEXLIB_DATA"):
        return Path(os.environ["FLEXLIB_DATA"]).expanduser()
    return Path.home() / ".cache" / "flexlib"


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | Path, expected_sha256: str | None) -> None:
    """Raise if ``path`` does not hash to ``expected_sha256`` (skipped when None)."""
    if expected_sha256 is None:
        return
    actual = sha256(path)
    if actual != expected_sha256.lower():
        raise DatasetFormatError(path, f"the published file (sha256 {expected_sha256})", f"sha256 {actual}")


def _inside(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if os.path.commonpath([base.resolve(), target]) != str(base.resolve()):
        raise ValueError(f"refusing to extract {name!r}: it would land outside {base}")
    return target


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a .zip or .tar(.gz) into ``dest``, refusing absolute paths, '..' and links out of ``dest``.

    Atomic: the archive is unpacked into a temporary folder beside ``dest`` that is renamed to ``dest`` only when
    complete, so a killed extraction never leaves a tree that is later taken as complete (leftovers of a killed
    run are removed by the next one). A truncated or corrupt archive raises DatasetFormatError."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"refusing to extract {archive} into {dest}: the folder exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.partial*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dest.parent / f".{dest.name}.partial{os.getpid()}"
    tmp.mkdir()
    try:
        _extract_into(archive, tmp)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        if isinstance(err, (FileExistsError, PermissionError)):
            raise
        raise DatasetFormatError(archive, "a complete .zip or .tar(.gz) archive",
                                 f"{type(err).__name__}: {err} (truncated or corrupt)") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract_into(archive: Path, dest: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _inside(dest, name)
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
            zf.extractall(dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                _inside(dest, member.name)
                if member.issym() or member.islnk():
                    _inside(dest, os.path.join(os.path.dirname(member.name), member.linkname))
            tf.extractall(dest, filter="data")
    else:
        raise DatasetFormatError(archive, "a .zip or .tar(.gz) archive", "neither (truncated, or not an archive)")
