"""The committed results are what a reader needs: every executed notebook shows its figures inline, every
result names an existing commit of a clean tree, and nothing names a folder of the machine that ran it."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p.parent for p in (ROOT / "results").glob("*/*/metadata.json"))
NOTEBOOKS = sorted((ROOT / "results").glob("*/*/*.ipynb"))
# an absolute path into a checkout (".../results/..." or ".../.venv/..."), not one relative to notebooks/ ("../")
ABSOLUTE = re.compile(r"(?<![\w.])/(?:[\w.-]+/)+(?:results|\.venv|notebooks|flexlib)/")


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


# a folder of the machine that ran it: a home, a temporary folder (an ipykernel cell file, a download cache)
HOST = re.compile(r"(?<![\w.])/(?:root|home/[\w.-]+|tmp|Users/[\w.-]+)/")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_an_executed_notebook_shows_its_figures_inline_and_no_path_of_the_machine_or_traceback(notebook):
    source = notebook.read_text()
    outputs = [o for c in json.loads(source)["cells"] for o in c.get("outputs", [])]
    assert [o for o in outputs if "image/png" in o.get("data", {})], \
        f"{notebook}: no inline figure (was it run with MPLBACKEND=Agg?)"
    assert not ABSOLUTE.search(source), f"{notebook}: names an absolute path of the machine that ran it"
    assert (notebook.parent / "metadata.json").exists(), f"{notebook}: no metadata.json beside it"
    printed = "".join("".join(o.get("text", "")) + "".join(o.get("traceback", [])) for o in outputs)
    host = HOST.search(printed)
    assert not host, f"{notebook}: names {host.group(0)}... of the machine that ran it"
    assert "Traceback" not in printed and "Error:" not in printed.replace("ConfigError", ""), \
        f"{notebook}: an error or traceback in its outputs"


@pytest.mark.parametrize("run", RUNS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_a_result_names_an_existing_commit_of_a_clean_tree(run):
    meta = json.loads((run / "metadata.json").read_text())
    commit = meta["git_commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", commit), f"{run}: git_commit {commit!r} is not a full commit hash"
    assert meta["git_tree_dirty"] is False and meta["git_dirty_paths"] == [], f"{run}: made from a dirty tree"
    assert not [s for s in _strings(meta) if s.startswith("/")], f"{run}: metadata names an absolute path"
    git = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
    if git.returncode != 0:
        shallow = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True).stdout.strip()
        if shallow != "false":
            pytest.skip("not a full git checkout: the commit cannot be looked up")
    assert git.returncode == 0, f"{run}: commit {commit} is not in this repository's history"


def test_the_tidy_step_makes_checkout_paths_relative_to_the_notebooks():
    import importlib.util
    spec = importlib.util.spec_from_file_location("tidy", ROOT / "scripts" / "tidy_notebooks.py")
    tidy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tidy)
    text = f"results -> {ROOT.resolve()}/results/cifar/cpu\n/tmp/ipykernel_1/2.py:3: UserWarning"
    assert tidy.portable_paths(text) == "results -> ../results/cifar/cpu\n/tmp/ipykernel_1/2.py:3: UserWarning"
    assert not ABSOLUTE.search(tidy.portable_paths(text)) and ABSOLUTE.search(text)
