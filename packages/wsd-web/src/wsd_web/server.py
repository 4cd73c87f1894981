"""A static HTTP server for the wsd app and one model build.

The app (package data) is served at ``/`` and the model directory at
``/model/``; files get the MIME types browsers insist on (``application/wasm``
for WebAssembly streaming, ``text/javascript`` for ES modules). It binds to
localhost unless told otherwise.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

STATIC_DIR = Path(__file__).parent / "static"
MODEL_PREFIX = "/model/"

_MIME = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".bin": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: Any, model_dir: Path, **kwargs: Any) -> None:
        self.model_dir = model_dir
        self.extensions_map = {**self.extensions_map, **_MIME}
        super().__init__(*args, directory=str(STATIC_DIR), **kwargs)

    def translate_path(self, path: str) -> str:
        """Map ``/model/...`` into the model directory and the rest into the app."""
        url_path = unquote(urlsplit(path).path)
        if url_path.startswith(MODEL_PREFIX):
            root, rest = self.model_dir, url_path[len(MODEL_PREFIX) :]
        else:
            root, rest = STATIC_DIR, url_path.lstrip("/")
        target = (root / rest).resolve()
        if not target.is_relative_to(root.resolve()):
            return str(root / "__outside__")  # a 404, never a file outside the roots
        return str(target)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the browser's own console and errors carry what matters."""


def make_server(
    model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000
) -> http.server.ThreadingHTTPServer:
    """A server (not yet serving) for the app and ``model_dir``; port 0 picks a free one."""
    model = Path(model_dir)
    if not model.is_dir():
        raise FileNotFoundError(
            f"model directory {model} does not exist; build one with wsd-compile"
        )
    handler = functools.partial(_Handler, model_dir=model.resolve())
    return http.server.ThreadingHTTPServer((host, port), handler)


def server_url(server: http.server.ThreadingHTTPServer) -> str:
    """The base URL a browser on this machine reaches ``server`` at."""
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}/"


@contextmanager
def serving(model_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the duration of the ``with``; yields the base URL."""
    server = make_server(model_dir, host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_url(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
