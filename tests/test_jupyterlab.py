"""The README's JupyterLab command starts a server from the venv that lists the notebooks and runs them with the
venv's Python (headless, on 127.0.0.1, through JupyterLab's REST API)."""
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def server():
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("needs the project's .venv (bash scripts/setup.sh)")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    proc = subprocess.Popen(["bash", "scripts/lab.sh", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"JupyterLab did not start:\n{proc.stdout.read()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_lab_lists_every_paper_notebook(server):
    base, token = server
    listed = {item["name"] for item in _get(f"{base}/api/contents/", token)["content"]}
    expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert expected and expected <= listed, f"missing: {sorted(expected - listed)}"


def _request(url: str, token: str, method: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"token {token}",
                                                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def test_lab_kernel_runs_the_venvs_python(server):
    """Start the notebooks' kernel (python3) through the REST API and ask it for sys.executable over the kernel's
    websocket (Jupyter messaging protocol: an execute_request on the shell channel, the answer as a stream)."""
    import uuid

    import websocket
    base, token = server
    kernel = _request(f"{base}/api/kernels", token, "POST", {"name": "python3"})
    ws = websocket.create_connection(f"{base.replace('http', 'ws')}/api/kernels/{kernel['id']}/channels?token={token}",
                                     timeout=60)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                                       "session": uuid.uuid4().hex, "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell",
                            "content": {"code": "import sys; print(sys.executable)", "silent": False}}))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "stream":
                executable = Path(msg["content"]["text"].strip())
                break
        else:
            pytest.fail("the kernel did not answer within 60 s")
    finally:
        ws.close()
        _request(f"{base}/api/kernels/{kernel['id']}", token, "DELETE")
    assert executable.parent == ROOT / ".venv" / "bin", f"kernel runs {executable}, not the venv's Python"


def test_lab_opens_a_notebook_as_nbformat_4_5(server):
    base, token = server
    model = _get(f"{base}/api/contents/cifar.ipynb", token)
    assert model["type"] == "notebook" and model["content"]["nbformat_minor"] == 5
