"""The archives flexlib downloads itself (torchvision fetches MNIST, CIFAR-10 and STL-10): where they come from,
their published SHA-256 where one exists, and `ensure`, which makes a dataset's folder complete or says why not."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .download import download as fetch
from .storage import DatasetFormatError, MissingDatasetError, safe_extract, verify_checksum


@dataclass(frozen=True)
class Source:
    url: str
    archive: str                 # file name in the data root
    sha256: str | None           # published checksum; None where nobody publishes one
    folder: str                  # extracted into <root>/<folder>
    required: tuple[str, ...]    # paths inside the folder that a complete extraction holds
    checksum_from: str = ""


SOURCES = {
    "speech_commands": Source(
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz", "speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58", "SpeechCommands",
        ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
        "torchaudio.datasets.SPEECHCOMMANDS"),
    "char_trajectories": Source(
        "https://www.timeseriesclassification.com/aeon-toolkit/CharacterTrajectories.zip",
        "CharacterTrajectories.zip", None, "CharacterTrajectories",
        ("CharacterTrajectories_TRAIN.ts", "CharacterTrajectories_TEST.ts")),
}


def ensure(name: str, root: Path, download: bool = False) -> Path:
    """The complete extracted folder of source `name` under `root`: extracted from the archive in `root` if it is
    there (checksum verified where published), downloaded first with `download=True`; else MissingDatasetError."""
    source = SOURCES[name]
    folder = root / source.folder
    if all((folder / path).exists() for path in source.required):
        return folder
    archive = root / source.archive
    fetched = False
    if not archive.is_file():
        checksum = f" (sha256 {source.sha256})" if source.sha256 else ""
        if not download:
            raise MissingDatasetError(name, folder, f"set data.download=true, or download {source.url}{checksum} "
                                                    f"into {root} (it is unpacked on first use)")
        fetch(source.url, archive, source.sha256)
        fetched = True
    if folder.exists() and not any(folder.iterdir()):
        folder.rmdir()
    if folder.exists():
        raise DatasetFormatError(folder, f"a folder holding {', '.join(source.required)} (from {archive.name})",
                                 "an incomplete folder; delete it so that the archive is unpacked again")
    try:
        verify_checksum(archive, source.sha256)
        safe_extract(archive, folder)
        missing = [p for p in source.required if not (folder / p).exists()]
        if missing:
            shutil.rmtree(folder)
            raise DatasetFormatError(archive, f"an archive holding {', '.join(source.required)}",
                                     f"no {', '.join(missing)}")
    except DatasetFormatError:
        if fetched:              # a bad download is not kept: the next run fetches it again
            archive.unlink(missing_ok=True)
        raise
    return folder
