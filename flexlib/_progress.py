"""Progress bars that help in a terminal and do not flood a notebook.

In a terminal a bar redraws in place; in a notebook or a log file every redraw is kept as a separate output, so
there the bar redraws at most every `FLEXLIB_PROGRESS_INTERVAL` seconds (default 30)."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress(iterable=None, terminal_only: bool = False, **kwargs) -> tqdm:
    """tqdm with a refresh interval suited to where the output goes; keyword arguments go to tqdm.

    terminal_only: no bar at all outside a terminal (for short, repeated work such as one training epoch, whose end
    the caller reports in a line of its own)."""
    if terminal_only and not _interactive():
        kwargs["disable"] = True
    elif not _interactive():
        kwargs.setdefault("mininterval", float(os.environ.get("FLEXLIB_PROGRESS_INTERVAL", "30")))
        kwargs.setdefault("maxinterval", kwargs["mininterval"])
    return tqdm(iterable, **kwargs)


def _interactive() -> bool:
    stream = sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()
