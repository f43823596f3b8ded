"""Progress bars that help in a terminal and do not flood a notebook.

In a terminal a bar redraws in place; in a notebook or a log file every redraw is kept as a separate output, so
there the bar redraws at most every `FLEXLIB_PROGRESS_INTERVAL` seconds (default 30)."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """tqdm with a refresh interval suited to where the output goes; keyword arguments go to tqdm."""
    if not _interactive():
        kwargs.setdefault("mininterval", float(os.environ.get("FLEXLIB_PROGRESS_INTERVAL", "30")))
        kwargs.setdefault("maxinterval", kwargs["mininterval"])
    return tqdm(iterable, **kwargs)


def _interactive() -> bool:
    stream = sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()
