"""What every paper notebook needs: provenance of a run, saving its results, and the paper-vs-ours table.

Results are data with provenance: `save_results` writes the table (CSV + JSON), the figures (PNG) and a
metadata.json (commit, versions, device, CPU, date, parameters) into one folder.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from ..engine.provenance import describe_device, provenance

describe = describe_device   # "cpu: <model>, <n> cores, <t> torch threads" or the GPU's name, for a notebook's text


def run_metadata(parameters: dict, device: str | torch.device = "cpu") -> dict:
    """Provenance of a notebook run (flexlib.engine.provenance: commit, versions, device, CPU, date) and its
    parameters."""
    return {**provenance(device), "parameters": parameters}


def temporary_dir(prefix: str) -> Path:
    """A fresh temporary folder, removed when the Python process (the notebook's kernel) exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def interactive_dir(name: str) -> Path:
    """Where a notebook run without an output_dir (interactively, in JupyterLab) keeps its outputs:
    results/<notebook>/interactive/<date-time>/ of the checkout (git-ignored), or under $FLEXLIB_INTERACTIVE_DIR when
    set (the test suite points it at a scratch folder)."""
    base = Path(os.environ["FLEXLIB_INTERACTIVE_DIR"]) if os.environ.get("FLEXLIB_INTERACTIVE_DIR") else \
        checkout_root() / "results" / name / "interactive"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for k in range(1, 1000):
        path = base / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free folder name next to {base / stamp}")


def resolve_output_dir(output_dir: str | os.PathLike | None, name: str) -> Path:
    """`output_dir`, created; None (an interactive run) means a new folder `interactive_dir(name)`, kept."""
    if output_dir is None:
        return interactive_dir(name)
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkout_root() -> Path:
    """The flexlib checkout the notebooks belong to: $FLEXLIB_CHECKOUT if set; else the one this package lies in
    (an editable install); else the first folder upwards from the working directory that holds
    params/experiments (a notebook runs in notebooks/, so a non-editable install finds its checkout too)."""
    if os.environ.get("FLEXLIB_CHECKOUT"):
        return Path(os.environ["FLEXLIB_CHECKOUT"]).resolve()
    cwd = Path.cwd().resolve()
    for folder in (Path(__file__).resolve().parents[2], cwd, *cwd.parents):
        if (folder / "params" / "experiments").is_dir() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(f"no flexlib checkout (a folder with params/experiments and notebooks/) in or above "
                            f"{Path.cwd()}; run from the checkout, or set FLEXLIB_CHECKOUT to it")


def portable(value, root: Path | None = None):
    """`value` with every absolute path made relative to the repository `root`; a path outside it keeps only its
    last component, after `<outside the repository>/`. Committed metadata names no folder of the machine that ran
    it."""
    root = root or checkout_root()
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v, root) for v in value]
    if isinstance(value, (str, os.PathLike)) and os.path.isabs(value) and "\n" not in str(value):
        path = Path(value).resolve()
        try:
            return str(path.relative_to(root.resolve()))
        except ValueError:
            return f"<outside the repository>/{path.name}"
    return value


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy / torch scalars
        return value.item()
    return value


def save_results(output_dir: str | os.PathLike, name: str, results, figures: dict | None = None,
                 metadata: dict | None = None) -> list[Path]:
    """Write `results` into `output_dir`: a DataFrame as <name>.csv + <name>.json (records), a dict as
    <name>.json; each matplotlib figure in `figures` ({stem: figure}) as <stem>.png; `metadata` as
    metadata.json, its paths made `portable`. Returns the paths written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if isinstance(results, pd.DataFrame):
        results.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
        payload = results.to_dict(orient="records")
    elif isinstance(results, dict):
        payload = results
    else:
        raise TypeError(f"save_results: results must be a pandas DataFrame or a dict, got {type(results).__name__}")
    (out / f"{name}.json").write_text(json.dumps(_jsonable(payload), indent=1) + "\n")
    written.append(out / f"{name}.json")
    for stem, figure in (figures or {}).items():
        figure.savefig(out / f"{stem}.png", dpi=120, bbox_inches="tight")
        written.append(out / f"{stem}.png")
    if metadata is not None:
        (out / "metadata.json").write_text(json.dumps(_jsonable(portable(metadata)), indent=1) + "\n")
        written.append(out / "metadata.json")
    return written


def compare_table(rows) -> pd.DataFrame:
    """Paper vs ours: `rows` is an iterable of (setting, paper, ours) or dicts with those keys. Returns a
    DataFrame with columns setting, paper, ours, difference (= ours - paper; NaN where either is missing)."""
    records = []
    for row in rows:
        setting, paper, ours = ((row["setting"], row.get("paper"), row.get("ours")) if isinstance(row, dict)
                                else tuple(row))
        paper = math.nan if paper is None else float(paper)
        ours = math.nan if ours is None else float(ours)
        records.append({"setting": setting, "paper": paper, "ours": ours, "difference": ours - paper})
    return pd.DataFrame.from_records(records, columns=["setting", "paper", "ours", "difference"])


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def annotation_types(annotation) -> tuple[type, ...]:
    """The isinstance types of a parameters cell's annotation: `int`, `list[str]`, `dict`, or the quoted
    `"Optional[float]"` (papermill's --help-notebook reads annotations without `|`) -> (float, NoneType)."""
    import typing
    if isinstance(annotation, str):
        names = {"Optional": typing.Optional, "Any": typing.Any, "list": list, "dict": dict, "str": str, "int": int,
                 "float": float, "bool": bool, "None": None}
        annotation = eval(annotation, {"__builtins__": {}}, names)   # noqa: S307 (a notebook's own annotation)
    if annotation is typing.Any:
        return (object,)
    if typing.get_origin(annotation) is typing.Union:
        return tuple(t for arg in typing.get_args(annotation) for t in annotation_types(arg))
    if annotation is None or annotation is type(None):
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)


def notebook_parameters(namespace: dict, where: str) -> dict:
    """Check a notebook's parameters after papermill's injection (papermill only warns on unknown names).

    `namespace` is the notebook's globals(); the `parameters` cell declares each parameter as
    `name: type = value  # what it does`, so its types are the namespace's `__annotations__` (and papermill
    --help-notebook lists them). Raises a ValueError naming any unknown parameter (a misspelling in `where`, e.g.
    the params YAML) and a TypeError for a value of the wrong type (e.g. `-p flag false` injects the string
    "false"). Returns {name: value}."""
    expected = {name: annotation_types(a) for name, a in namespace.get("__annotations__", {}).items()}
    if not expected:
        raise ValueError("the `parameters` cell declares no typed parameters (`name: type = value  # help`)")
    user = {k for k, v in namespace.items() if not k.startswith("_") and k not in _IPYTHON_NAMES
            and type(v).__name__ != "module"}
    unknown = sorted(user - set(expected))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} (from {where}); this notebook takes {sorted(expected)}")
    values = {}
    for name, types in expected.items():
        if name not in namespace:
            raise ValueError(f"parameter {name!r} is missing: the `parameters` cell must define it")
        value = namespace[name]
        if float in types:
            types = (*types, int)   # `-p lr 1` injects an int
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise TypeError(f"parameter {name!r} must be {names}, got {value!r} ({type(value).__name__}); "
                            "pass YAML values with papermill -f/-y (`-p name false` gives the string 'false')")
        values[name] = value
    return values


def require(condition: bool, message: str) -> None:
    """Raise a ValueError with `message` unless `condition` (a parameter check in a notebook)."""
    if not condition:
        raise ValueError(message)


PROFILES = ("quick", "cpu", "full", "authors")


def numerics_pins() -> dict[str, str]:
    """The environment params/numerics.env pins for every reproduction run ({variable: value})."""
    pins = {}
    for line in (checkout_root() / "params" / "numerics.env").read_text().splitlines():
        key, sep, value = line.split("#", 1)[0].strip().partition("=")
        if sep:
            pins[key.strip()] = value.strip()
    return pins


def unpinned_numerics() -> list[str]:
    """The pinned variables this process does not have as params/numerics.env sets them ("NAME=value (pinned: v)")."""
    return [f"{k}={os.environ.get(k, '<unset>')} (pinned: {v})" for k, v in numerics_pins().items()
            if os.environ.get(k) != v]


def notebook_setup(name: str, params: dict, profiles=("quick", "cpu", "full")) -> tuple[Path, Path]:
    """The checks and setup every notebook shares, from its checked parameters: `profile` among `profiles`, `device`
    usable here, `threads` ≥ 1 (set for torch), `overrides` as {section.key: value}; deterministic algorithms on (and
    with them a convolution path chosen without timing), and a note when the instruction set is not pinned as
    params/numerics.env pins it. Returns (the output folder, the folder for engine runs: `<out>/runs` with
    keep_runs, else a temporary one)."""
    profile, device = params["profile"], params.get("device", "cpu")
    require(profile in profiles, f"profile must be one of {list(profiles)}, got {profile!r}")
    require(device == "cpu" or device.startswith("cuda"), f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    require(not device.startswith("cuda") or torch.cuda.is_available(),
            f"device {device!r} requested but CUDA is not available here; use device='cpu'")
    require(params.get("threads", 1) >= 1, "threads must be positive")
    overrides = params.get("overrides", {})
    require(isinstance(overrides, dict) and all(isinstance(k, str) and "." in k.removesuffix(":") for k in overrides),
            f"overrides must be a mapping {{section.key: value}}, e.g. {{'train.epochs': 3}}, got {overrides!r}")
    torch.set_num_threads(params.get("threads", 1))   # one thread: on a shared 2-core machine, 2 can be 10x slower
    torch.use_deterministic_algorithms(True, warn_only=True)
    unpinned = unpinned_numerics()
    if unpinned:
        print(f"note: numerics not pinned in this kernel ({'; '.join(unpinned)}): numbers can differ from results/ on "
              f"another CPU. `bash scripts/lab.sh` and `bash scripts/reproduce.sh` pin them (params/numerics.env).",
              file=sys.stderr)
    out = resolve_output_dir(params.get("output_dir"), name)
    if params.get("output_dir") is None:
        print(f"this interactive run keeps its outputs in {portable(str(out))}/")
    runs_dir = out / "runs" if params.get("keep_runs") else temporary_dir(f"flexlib-{name}-runs-")
    return out, runs_dir
