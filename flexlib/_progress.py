"""Progress bars where the work is watched: widgets in JupyterLab, a bar redrawn in place in a terminal, and in a
log (papermill, nbval, a file) a line at most every `FLEXLIB_PROGRESS_INTERVAL` seconds (default 5), so that long
loops show they are alive without flooding the output.

`FLEXLIB_PROGRESS=text` forces the text form even in a notebook kernel (scripts/run_notebooks.sh and scripts/test.sh
set it: an executed notebook saved by papermill keeps text, not a widget it cannot show)."""
from __future__ import annotations

import os
import sys

from tqdm import tqdm


def progress(iterable=None, terminal_only: bool = False, **kwargs) -> tqdm:
    """tqdm in the form that suits where the output goes; keyword arguments go to tqdm.

    terminal_only: no bar in a log (for short, repeated work such as one training epoch, whose end the caller
    reports in a line of its own); a widget or a terminal still shows it."""
    if _widgets():
        from tqdm.notebook import tqdm as notebook_tqdm
        return notebook_tqdm(iterable, **kwargs)
    if terminal_only and not _terminal():
        kwargs["disable"] = True
    elif not _terminal():
        kwargs.setdefault("mininterval", float(os.environ.get("FLEXLIB_PROGRESS_INTERVAL", "5")))
        kwargs.setdefault("maxinterval", kwargs["mininterval"])
    return tqdm(iterable, **kwargs)


def _terminal() -> bool:
    stream = sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def _widgets() -> bool:
    """In a Jupyter kernel whose front end can show widgets (ipywidgets installed), unless text is asked for."""
    if os.environ.get("FLEXLIB_PROGRESS", "auto") == "text" or "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
