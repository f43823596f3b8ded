"""Downloading the archives flexlib fetches itself (Speech Commands, CharacterTrajectories) from a local HTTP
server on 127.0.0.1 that serves small format-exact copies: download, checksum and extraction; a wrong checksum,
a truncated archive and a dropped connection give a clear error and leave nothing half-made."""
import functools
import http.server
import threading
from dataclasses import replace

import pytest

import formats
from flexlib.data import DataConfig, DatasetFormatError, MissingDatasetError, build, sources
from flexlib.data.download import DownloadError
from flexlib.data.storage import sha256


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/dropped/"):        # promises the whole file, sends half, hangs up
            data = (self.directory_path / self.path.removeprefix("/dropped/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    formats.speech_commands_tar(served / "speech_commands_v0.02.tar.gz")
    formats.char_trajectories_zip(served / "CharacterTrajectories.zip")
    truncated = (served / "speech_commands_v0.02.tar.gz").read_bytes()
    (served / "truncated.tar.gz").write_bytes(truncated[: len(truncated) // 2])
    handler = functools.partial(type("H", (_Handler,), {"directory_path": served}), directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def _serve(monkeypatch, name, url, sha=...):
    source = sources.SOURCES[name]
    monkeypatch.setitem(sources.SOURCES, name, replace(source, url=url, **({} if sha is ... else {"sha256": sha})))


def _leftovers(root):
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_verify_and_extract_speech_commands(server, monkeypatch, tmp_path):
    base, served = server
    _serve(monkeypatch, "speech_commands", f"{base}/speech_commands_v0.02.tar.gz",
           sha256(served / "speech_commands_v0.02.tar.gz"))
    root = tmp_path / "data"
    with pytest.raises(MissingDatasetError, match=r"data.download=true.*speech_commands_v0.02.tar.gz \(sha256 "):
        build(DataConfig("speech_commands_mfcc", root=str(root)))
    data = build(DataConfig("speech_commands_mfcc", root=str(root), download=True))
    assert len(data.train) + len(data.val) + len(data.test) == 100
    assert (root / "speech_commands_v0.02.tar.gz").is_file() and (root / "SpeechCommands" / "yes").is_dir()


def test_download_and_extract_char_trajectories_without_published_checksum(server, monkeypatch, tmp_path):
    base, _ = server
    _serve(monkeypatch, "char_trajectories", f"{base}/CharacterTrajectories.zip")
    assert sources.SOURCES["char_trajectories"].sha256 is None     # timeseriesclassification.com publishes none
    data = build(DataConfig("char_trajectories", root=str(tmp_path / "data"), download=True))
    assert data.num_classes == 20 and len(data.test) == 30


def test_the_published_checksum_refuses_another_file(server, monkeypatch, tmp_path):
    base, _ = server
    _serve(monkeypatch, "speech_commands", f"{base}/speech_commands_v0.02.tar.gz")    # keeps the published sha256
    assert sources.SOURCES["speech_commands"].sha256.startswith("af14739e")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"checksum mismatch for .*expected af14739e.*not kept"):
        build(DataConfig("speech_commands_raw", root=str(root), download=True))
    assert _leftovers(root) == []                                   # neither the archive nor a partial file


def test_a_truncated_archive_is_refused_and_not_kept(server, monkeypatch, tmp_path):
    base, served = server
    _serve(monkeypatch, "speech_commands", f"{base}/truncated.tar.gz", sha256(served / "truncated.tar.gz"))
    root = tmp_path / "data"
    with pytest.raises(DatasetFormatError, match=r"speech_commands_v0.02.tar.gz is not a valid dataset file.*"
                                                 r"truncated or corrupt"):
        build(DataConfig("speech_commands_raw", root=str(root), download=True))
    assert _leftovers(root) == []                                   # no half-extracted tree, no bad archive


def test_a_dropped_connection_is_a_clear_error(server, monkeypatch, tmp_path):
    base, _ = server
    _serve(monkeypatch, "char_trajectories", f"{base}/dropped/CharacterTrajectories.zip")
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"CharacterTrajectories.zip ended after \d+ of \d+ bytes; .*put it at"):
        build(DataConfig("char_trajectories", root=str(root), download=True))
    assert _leftovers(root) == []


def test_no_network_says_where_to_put_the_file(monkeypatch, tmp_path):
    _serve(monkeypatch, "char_trajectories", "http://127.0.0.1:9/CharacterTrajectories.zip")
    with pytest.raises(DownloadError, match=r"could not download .*put it at .*CharacterTrajectories.zip"):
        build(DataConfig("char_trajectories", root=str(tmp_path), download=True))


def test_a_killed_extraction_is_never_taken_as_complete(server, monkeypatch, tmp_path):
    base, served = server
    root = tmp_path / "data"
    root.mkdir()
    (root / "speech_commands_v0.02.tar.gz").write_bytes((served / "speech_commands_v0.02.tar.gz").read_bytes())
    partial = root / ".SpeechCommands.partial4242" / "yes"          # what a kill during extraction leaves
    partial.mkdir(parents=True)
    _serve(monkeypatch, "speech_commands", f"{base}/unused", sha256(root / "speech_commands_v0.02.tar.gz"))
    data = build(DataConfig("speech_commands_raw", root=str(root)))
    assert len(data.train) > 0 and not partial.parent.exists()     # unpacked afresh; the leftover is removed
