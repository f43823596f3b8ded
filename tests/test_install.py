"""A non-editable install (`pip install .`) works from the checkout's notebooks: it finds params/ and the package
data it ships (the Kodak images, the authors' kernel-fitting files)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import flexlib, flexlib.paper.runs as runs
from pathlib import Path
from flexlib.engine import load_config
from flexlib.data.kodak_images import kodak_image
from flexlib.paper.kernel_fitting import random_target
assert Path(flexlib.__file__).is_relative_to(Path({site!r})), flexlib.__file__
plan = runs.plan(["3"], [["T3 FlexNet-16", "flexnet-3", {{}}]], [0])
cfg = load_config(runs.PARAMS / f"{{plan[0].experiment}}.yaml", "quick", list(plan[0].settings))
assert cfg.model.name == "flexnet-3" and runs.PARAMS == Path({params!r})
assert kodak_image(1).shape == (3, 512, 768) and random_target().shape[-1] == 33
"""


def test_a_non_editable_install_loads_a_notebook_profile_from_the_notebooks_folder(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "flexlib", source / "flexlib", ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = PROBE.format(site=str(site), params=str(ROOT / "params" / "experiments"))
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT / "notebooks", env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
