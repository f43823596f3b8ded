"""Every paper notebook's `parameters` cell holds the quick profile: its defaults equal params/notebooks/<name>_quick.yaml,
every profile's YAML file names the same parameters (docs/notebooks.md), and each is typed and documented where
papermill --help-notebook reads it."""
import ast
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
REQUIRED = {"profile", "device", "output_dir"}


def parameters_cell(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}"
    values = {}
    for node in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None, \
            f"{path.name}: the parameters cell must hold only `name: type = literal  # help` lines, got {ast.unparse(node)!r}"
        values[node.target.id] = ast.literal_eval(node.value)
    return values


def load_yaml(path: Path) -> dict:
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name}: expected a mapping of parameter names to values"
    return data


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_quick_yaml(notebook):
    defaults = parameters_cell(notebook)
    assert REQUIRED <= set(defaults), f"{notebook.name}: the parameters cell lacks {sorted(REQUIRED - set(defaults))}"
    assert defaults["profile"] == "quick" and defaults["output_dir"] is None
    quick = load_yaml(ROOT / "params" / "notebooks" / f"{notebook.stem}_quick.yaml")
    assert quick == defaults, f"{notebook.name}: parameters cell and params/notebooks/{notebook.stem}_quick.yaml differ"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_profile_file_has_the_same_keys_and_names_its_profile(notebook):
    """Every params/notebooks/<name>_<profile>.yaml (quick, cpu, full, authors) sets the same parameters."""
    quick = load_yaml(ROOT / "params" / "notebooks" / f"{notebook.stem}_quick.yaml")
    files = sorted((ROOT / "params" / "notebooks").glob(f"{notebook.stem}_*.yaml"))
    profiles = {f.stem[len(notebook.stem) + 1:] for f in files}
    assert {"quick", "full"} <= profiles <= {"quick", "cpu", "full", "authors"}, profiles
    for path in files:
        values = load_yaml(path)
        assert set(values) == set(quick), f"{path.name}: keys differ from quick: {sorted(set(values) ^ set(quick))}"
        assert values["profile"] == path.stem[len(notebook.stem) + 1:], f"{path.name}: profile {values['profile']!r}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_uses_python3(notebook):
    nb = json.loads(notebook.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["cells"][0]["cell_type"] == "markdown", "the first cell states the paper's claim"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, \
                f"{notebook.name}: commit notebooks with outputs stripped"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_nbformat_4_5_with_stable_cell_ids(notebook):
    """JupyterLab adds ids to 4.4 notebooks on open and then marks them modified; 4.5 with ids opens clean."""
    nb = json.loads(notebook.read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5), f"{notebook.name}: run scripts/tidy_notebooks.py sources"
    ids = [cell.get("id") for cell in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), f"{notebook.name}: every cell needs its own id"


@pytest.fixture(scope="module")
def kernel_reply():
    """What the project's python3 kernel reports on connecting: JupyterLab writes this into a notebook it opens."""
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from tidy_notebooks import kernel_metadata
    return kernel_metadata()


def test_notebooks_and_executed_results_carry_the_kernels_own_metadata(kernel_reply):
    """JupyterLab marks a notebook modified when the kernel's kernel_info reply (language_info) or the kernelspec's
    display name differ from the notebook's metadata; the sources and every executed result carry them as they are."""
    assert kernel_reply["language_info"]["name"] == "python" and kernel_reply["language_info"]["version"]
    executed = sorted((ROOT / "results").glob("*/*/*.ipynb"))
    for path in [*NOTEBOOKS, *executed]:
        metadata = json.loads(path.read_text())["metadata"]
        assert metadata["kernelspec"] == kernel_reply["kernelspec"], path.relative_to(ROOT)
        assert metadata["language_info"] == kernel_reply["language_info"], path.relative_to(ROOT)


def test_tidy_script_finds_nothing_to_change():
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "tidy_notebooks.py"), "sources", "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_interactive_run_keeps_its_outputs_in_a_visible_folder_and_removes_its_temporary_runs(tmp_path):
    """Without output_dir (JupyterLab) a notebook's outputs go to results/<notebook>/interactive/<time>/ (here the
    folder $FLEXLIB_INTERACTIVE_DIR names) and stay; its engine runs (without keep_runs) go to a temporary folder,
    removed when the kernel exits, so they do not pile up in /tmp."""
    import subprocess
    import sys
    code = ("from flexlib.paper.reporting import notebook_setup\n"
            "out, runs = notebook_setup('demo', {'profile': 'quick'})\n"
            "(out / 'table.csv').write_text('a\\n1\\n')\n"
            "(runs / 'checkpoint.pt').write_bytes(b'x')\n"
            "print(out, runs)\n")
    env = {"TMPDIR": str(tmp_path / "tmp"), "PATH": "/usr/bin:/bin", "FLEXLIB_INTERACTIVE_DIR": str(tmp_path / "kept")}
    (tmp_path / "tmp").mkdir()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=ROOT / "notebooks")
    said, paths = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    out, runs = (Path(p) for p in paths.split())
    assert said.startswith("this interactive run keeps its outputs in") and out.name in said
    assert out.parent == tmp_path / "kept" and (out / "table.csv").is_file()
    assert runs.parent == tmp_path / "tmp" and not runs.exists() and not list((tmp_path / "tmp").glob("flexlib-*"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_help_lists_every_parameter_with_its_type_and_meaning(notebook):
    """`papermill --help-notebook` (papermill.inspect_notebook) names every parameter a profile file can pass, each
    with the type the validation cell checks (reporting.annotation_types) and a line saying what it does."""
    import papermill
    from flexlib.paper.reporting import annotation_types
    inferred = papermill.inspect_notebook(str(notebook))
    defaults = parameters_cell(notebook)
    assert list(inferred) == list(defaults), f"{notebook.name}: papermill infers {list(inferred)}"
    keys = set().union(*(load_yaml(p) for p in (ROOT / "params" / "notebooks").glob(f"{notebook.stem}_*.yaml")))
    assert keys <= set(inferred), f"{notebook.name}: profile files pass {sorted(keys - set(inferred))}, not documented"
    for name, param in inferred.items():
        assert param["inferred_type_name"] not in ("None", ""), f"{notebook.name}: {name} has no type"
        assert len(param["help"]) > 10, f"{notebook.name}: {name} has no help line"
        types = annotation_types(param["inferred_type_name"])
        assert isinstance(defaults[name], types), f"{notebook.name}: {name} = {defaults[name]!r} is not {types}"
        for path in (ROOT / "params" / "notebooks").glob(f"{notebook.stem}_*.yaml"):
            value = load_yaml(path)[name]
            assert isinstance(value, types) or (float in types and isinstance(value, int)), \
                f"{path.name}: {name} = {value!r} does not match the notebook's `{param['inferred_type_name']}`"


def test_notebook_parameters_reads_the_cells_annotations():
    """The validation cell's types come from the parameters cell's annotations: a wrong type and an unknown name
    are refused, naming the parameter; Optional admits None; a float admits an int (`-p lr 1`)."""
    from flexlib.paper.reporting import notebook_parameters
    ns = {}
    exec("lr: float = 0.01\nout: 'Optional[str]' = None\nruns: list[list] = []\n", ns)
    assert notebook_parameters(ns, where="test") == {"lr": 0.01, "out": None, "runs": []}
    ns["lr"] = 1
    assert notebook_parameters(ns, where="test")["lr"] == 1
    ns["out"] = 3
    with pytest.raises(TypeError, match=r"parameter 'out' must be str or None, got 3 \(int\)"):
        notebook_parameters(ns, where="test")
    ns["out"], ns["lrr"] = "x", 0.1
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lrr'\] \(from test\)"):
        notebook_parameters(ns, where="test")
