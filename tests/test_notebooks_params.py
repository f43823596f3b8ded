"""Every paper notebook's `parameters` cell holds the quick profile: its defaults equal params/notebooks/<name>_quick.yaml,
and every profile's YAML file names the same parameters (docs/notebooks.md)."""
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
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"{path.name}: the parameters cell must hold only `name = literal` lines, got {ast.unparse(node)!r}"
        values[node.targets[0].id] = ast.literal_eval(node.value)
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
