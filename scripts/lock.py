"""Write requirements.lock: every package `pip install '.[dev,notebooks]'` installs, at its exact version, with the
SHA-256 of the file pip chose, resolved for this interpreter and platform (CI and the committed results: CPython
3.11 on Linux x86-64). scripts/setup.sh installs from it with `pip install --require-hashes`.

    .venv/bin/python scripts/lock.py      # after changing pyproject.toml or constraints.txt; commit the new lock

It asks pip for a resolution from scratch (`pip install --dry-run --ignore-installed --report`), so the lock holds
what a fresh machine would get today from the package indexes pip is configured with, within constraints.txt.
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def resolve() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-c", str(ROOT / "constraints.txt"), f"{ROOT}[dev,notebooks]"],
                       check=True)
        return json.loads(report.read_text())["install"]


def main() -> int:
    lines = []
    for item in sorted(resolve(), key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name == "flexlib":
            continue
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise SystemExit(f"lock: pip reports no sha256 for {name} {version} ({item['download_info'].get('url')})")
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashes['sha256']}")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    header = (f"# Every package of flexlib[dev,notebooks], exact version and SHA-256, written by scripts/lock.py.\n"
              f"# python: {python}\n# platform: {platform.system().lower()}-{platform.machine()}\n"
              f"# {len(lines)} packages. Update: .venv/bin/python scripts/lock.py (then commit this file).\n")
    LOCK.write_text(header + "\n".join(lines) + "\n")
    print(f"wrote {LOCK.relative_to(ROOT)}: {len(lines)} packages for Python {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
