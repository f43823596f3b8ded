"""The README's JupyterLab command starts a server from the venv on the whole checkout (notebooks/ and results/),
without the news popup, whose kernel runs the venv's Python and reports the metadata the notebooks carry (headless,
on 127.0.0.1, through JupyterLab's REST API)."""
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
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


def _start(*args):
    if not (ROOT / ".venv" / "bin" / "jupyter").exists():
        pytest.skip("needs the project's .venv (bash scripts/setup.sh)")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    proc = subprocess.Popen(["bash", "scripts/lab.sh", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             f"--IdentityProvider.token={token}", *args], cwd=ROOT, env=env,
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


@pytest.fixture(scope="module")
def server():
    yield from _start()


def _names(base: str, token: str, folder: str = "") -> set[str]:
    return {item["name"] for item in _get(f"{base}/api/contents/{folder}", token)["content"]}


def test_lab_serves_the_checkout_and_opens_on_the_notebooks(server):
    base, token = server
    expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert expected and expected <= _names(base, token, "notebooks")
    assert {"notebooks", "results", "params"} <= _names(base, token)
    assert "quick" in _names(base, token, "results/cifar")                      # executed results one click away
    request = urllib.request.Request(f"{base}/", headers={"Authorization": f"token {token}"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None
    try:
        urllib.request.build_opener(NoRedirect).open(request, timeout=5)
        location = None
    except urllib.error.HTTPError as err:
        location = err.headers["Location"]
    assert location and location.split("?")[0].endswith("/lab/tree/notebooks")


def test_lab_starts_without_the_news_popup(server):
    base, token = server
    setting = _get(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification", token)
    assert setting["schema"]["properties"]["fetchNews"]["default"] == "false"     # "none" asks with a popup


def test_lab_passes_a_root_dir_of_the_users_through():
    for base, token in _start("--ServerApp.root_dir=notebooks"):
        assert "cifar.ipynb" in _names(base, token)


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
    model = _get(f"{base}/api/contents/notebooks/cifar.ipynb", token)
    assert model["type"] == "notebook" and model["content"]["nbformat_minor"] == 5
