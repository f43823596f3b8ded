"""Fetching a file over HTTP(S) with a progress bar, a checksum and no half-written result.

The file is written to a temporary name beside its destination and renamed only once it is complete and its
SHA-256 matches, so a killed download or a corrupted one never leaves a file that is later taken as complete.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from .._progress import progress as progress_bar
from .storage import sha256 as file_sha256


class DownloadError(OSError):
    """A download failed (no network, HTTP error, wrong checksum); the message says where to put the file."""


def download(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Fetch `url` to `dest` (skipped when `dest` exists and matches `sha256`); returns `dest`.

    Raises DownloadError naming the URL, the reason and where to put the file by hand."""
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or file_sha256(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part{os.getpid()}")
    by_hand = f"download {url} yourself and put it at {dest}"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                              disable=not progress) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if total is not None and tmp.stat().st_size != total:
            raise DownloadError(f"download of {url} ended after {tmp.stat().st_size} of {total} bytes; "
                                f"try again or {by_hand}")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise DownloadError(f"checksum mismatch for {url}: sha256 {digest.hexdigest()}, expected {sha256}; "
                                f"the file was not kept. Try again or {by_hand}")
        os.replace(tmp, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        if isinstance(err, DownloadError):
            raise
        reason = getattr(err, "reason", None) or f"{type(err).__name__}: {err}"
        raise DownloadError(f"could not download {url} ({reason}); {by_hand}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest
