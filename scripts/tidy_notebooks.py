"""Keep the paper notebooks diff-friendly.

    python scripts/tidy_notebooks.py sources [--check]   # notebooks/*.ipynb: nbformat 4.5, a stable id per cell,
                                                         # outputs and execution counts stripped
    python scripts/tidy_notebooks.py executed FILE...    # an executed copy: merge consecutive stream outputs,
                                                         # keep only the last redraw of each progress-bar line,
                                                         # and name files of the checkout relative to notebooks/

Ids are given once, to cells that have none, and kept from then on; the kernelspec and language_info are the ones
the project's kernel reports (`kernel_metadata`); so JupyterLab opens a notebook, source or executed, without
marking it modified.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import nbformat
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

ROOT = Path(__file__).resolve().parents[1]


def kernel_metadata() -> dict:
    """The notebook metadata JupyterLab writes when the project's python3 kernel connects: the kernelspec's name,
    display name and language, and the language_info of the kernel's kernel_info reply."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel
    spec = KernelSpecManager().get_kernel_spec("python3")
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        info = client.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": "python3"},
            "language_info": info}


def tidy_source(nb: nbformat.NotebookNode, kernel: dict) -> nbformat.NotebookNode:
    nb.nbformat, nb.nbformat_minor = 4, 5
    nb.metadata.update(nbformat.from_dict(kernel))
    used = {c.get("id") for c in nb.cells}
    for cell in nb.cells:
        if not cell.get("id"):
            cell.id = next(i for i in iter(lambda: uuid.uuid4().hex[:8], None) if i not in used)
            used.add(cell.id)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    return nb


def sources(check: bool) -> int:
    changed = []
    kernel = kernel_metadata()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        nb = tidy_source(nbformat.reads(text, as_version=4), kernel)
        nbformat.validate(nb)
        new = nbformat.writes(nb) + "\n"
        if new != text:
            changed.append(path.relative_to(ROOT))
            if not check:
                path.write_text(new)
    if changed:
        print(("needs tidying: " if check else "tidied: ") + ", ".join(map(str, changed)))
    return 1 if check and changed else 0


def portable_paths(text: str, root: Path = ROOT) -> str:
    """`text` with the checkout's absolute path replaced by the path from notebooks/ (where the notebooks run), so a
    committed notebook names no folder of the machine that ran it."""
    return text.replace(f"{root.resolve()}/", "../")


def executed(paths: list[str]) -> int:
    kernel = kernel_metadata()
    for name in paths:
        nb = nbformat.read(name, as_version=4)
        nb.metadata.update(nbformat.from_dict(kernel))
        nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
        Path(name).write_text(portable_paths(nbformat.writes(nb)) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["sources"] and set(argv[1:]) <= {"--check"}:
        return sources("--check" in argv)
    if argv[:1] == ["executed"] and argv[1:]:
        return executed(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
