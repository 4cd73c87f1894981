"""The static server: the app at /, the model at /model/, the right MIME types."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from wsd_web.cli import main
from wsd_web.server import make_server, serving


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "check.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "check.json").write_text("{}")
    (tmp_path / "shard-1.bin").write_bytes(b"\1\2")
    return tmp_path


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], b""


def test_model_files_are_served_with_browser_mime_types(model_dir: Path) -> None:
    with serving(model_dir) as base:
        assert _get(base + "model/check.wasm") == (200, "application/wasm", b"\0asm\1\0\0\0")
        assert _get(base + "model/check.json")[1] == "application/json"
        assert _get(base + "model/shard-1.bin")[1] == "application/octet-stream"


def test_the_app_and_its_vendored_runtime_are_served(model_dir: Path) -> None:
    with serving(model_dir) as base:
        status, mime, body = _get(base + "check.html")
        assert (status, mime) == (200, "text/html; charset=utf-8")
        assert b"vendor/tvmjs/index.js" in body
        assert _get(base + "js/check_page.js")[1] == "text/javascript"
        status, _, body = _get(base + "vendor/tvmjs/index.js")
        assert status == 200 and b"tvmjs" in body


def test_nothing_outside_the_roots_is_reachable(model_dir: Path) -> None:
    with serving(model_dir) as base:
        assert _get(base + "model/../../../etc/passwd")[0] == 404
        assert _get(base + "model/%2e%2e/%2e%2e/etc/passwd")[0] == 404
        assert _get(base + "model/missing.bin")[0] == 404


def test_binds_to_localhost_by_default(model_dir: Path) -> None:
    server = make_server(model_dir, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_a_missing_model_directory_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist; build one with wsd-compile" in err[0]


def test_serve_command_prints_its_url_and_serves(model_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsd_web", "serve", str(model_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" open ")[1].split(" ")[0]
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "model/check.json")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
