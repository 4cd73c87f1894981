"""A static HTTP server for the wsd app and one model build.

The app (package data, rendered by `wsd_web.site.render_site`: integrity
pinned, import map, precache list) is served at ``/`` and the model
directory at ``/model/``, with the headers of `wsd_web.site.headers_for`:
the MIME types browsers insist on (``application/wasm`` for streaming
compilation, ``text/javascript`` for ES modules), ``immutable`` caching for
content-hashed weight shards and revalidation (ETag / Last-Modified, 304)
for everything else, a strict Content-Security-Policy, single byte ranges
(206 / 416) and, only for allow-listed origins, CORS. It binds to localhost
unless told otherwise and logs nothing; `WsdServer.requests` records what
was asked for.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import ipaddress
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .site import (
    STATIC_DIR,
    Site,
    SiteError,
    cors_headers,
    fingerprint,
    headers_for,
    parse_origin,
    render_site,
)

__all__ = [
    "MODEL_PREFIX",
    "STATIC_DIR",
    "Served",
    "WsdServer",
    "headers_for",
    "is_loopback",
    "make_server",
    "server_url",
    "serving",
]

MODEL_PREFIX = "/model/"

#: Called with (method, URL path) for every request, before it is answered.
RequestHook = Callable[[str, str], None]

_RANGE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


class _UnsatisfiableRangeError(Exception):
    pass


@dataclass(frozen=True)
class _Body:
    """What a URL resolves to: bytes in memory or a file on disk, with its validators."""

    size: int
    etag: str
    modified: float
    data: bytes | None = None
    path: Path | None = None


class WsdServer(http.server.ThreadingHTTPServer):
    """The app and one model directory over HTTP; see the module's docstring."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        model_dir: Path,
        static_dir: Path = STATIC_DIR,
        cors_origins: Sequence[str] = (),
        connect_src: Sequence[str] = (),
        on_request: RequestHook | None = None,
    ) -> None:
        self.model_dir = model_dir.resolve()
        self.static_dir = Path(static_dir).resolve()
        self.cors_origins = tuple(parse_origin(o) for o in cors_origins)
        self.connect_src = tuple(parse_origin(o) for o in connect_src)
        self.on_request = on_request
        self._log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._site_key = fingerprint(self.static_dir)
        self._site = render_site(self.static_dir, connect_src=self.connect_src)
        super().__init__(address, _Handler)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """A copy of the (method, URL path) of every request so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self._log.append((method, path))
        if self.on_request is not None:
            self.on_request(method, path)

    def site(self) -> Site:
        """The rendered app, rendered again when a file of it changed on disk."""
        with self._lock:
            key = fingerprint(self.static_dir)
            if key != self._site_key:
                self._site = render_site(self.static_dir, connect_src=self.connect_src)
                self._site_key = key
            return self._site

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that goes away mid-download is not an error worth printing."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: WsdServer
    protocol_version = "HTTP/1.1"
    server_version = "wsd-web"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the browser's own console and errors carry what matters."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_OPTIONS(self) -> None:
        """CORS preflight: GET and HEAD with a Range header, for allow-listed origins."""
        self.server.record("OPTIONS", urlsplit(self.path).path)
        origin = self.headers.get("Origin")
        self.send_response(204)
        self.send_header("Allow", "GET, HEAD, OPTIONS")
        if self.server.cors_origins:
            self.send_header("Vary", "Origin")
        if origin is not None and origin in self.server.cors_origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD")
            self.send_header("Access-Control-Allow-Headers", "Range")
            self.send_header("Access-Control-Max-Age", "86400")
        self.end_headers()

    def _resolve(self, url_path: str, site: Site) -> tuple[str, _Body] | None:
        """(path relative to the site root, body) for ``url_path``; None is a 404."""
        if "\0" in url_path or not url_path.startswith("/"):
            return None
        if url_path.startswith(MODEL_PREFIX):
            root, rest, prefix = self.server.model_dir, url_path[len(MODEL_PREFIX) :], "model/"
        else:
            root, rest, prefix = self.server.static_dir, url_path.lstrip("/"), ""
            if rest == "":
                rest = "index.html"
        if rest == "" or rest.endswith("/"):
            return None  # no directory listings
        target = (root / rest).resolve()
        if not target.is_relative_to(root):
            return None  # never a file outside the roots
        rel = target.relative_to(root).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in rel.split("/")):
            return None
        if not prefix and rel in site.files:
            data = site.files[rel]
            tag = hashlib.sha384(data).hexdigest()[:32]
            return rel, _Body(len(data), f'"r{tag}"', site.modified, data=data)
        if not target.is_file():
            return None
        st = target.stat()
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        return prefix + rel, _Body(st.st_size, etag, st.st_mtime, path=target)

    def _serve(self, *, head: bool) -> None:
        url_path = unquote(urlsplit(self.path).path)
        self.server.record(self.command, urlsplit(self.path).path)
        try:
            site = self.server.site()
        except (SiteError, OSError) as e:
            self._plain(500, f"wsd-web: the app cannot be served: {e}\n", head)
            return
        found = self._resolve(url_path, site)
        if found is None:
            self._plain(404, "Not found\n", head)
            return
        rel, body = found
        headers = headers_for(
            rel,
            site=site,
            cors_origins=self.server.cors_origins,
            request_origin=self.headers.get("Origin"),
        )
        last_modified = email.utils.formatdate(body.modified, usegmt=True)
        validators = [("ETag", body.etag), ("Last-Modified", last_modified)]
        if self._not_modified(body):
            self.send_response(304)
            for name, value in headers + validators:
                if name != "Content-Type":
                    self.send_header(name, value)
            self.end_headers()
            return
        try:
            span = self._range(body, last_modified)
        except _UnsatisfiableRangeError:
            self.send_response(416)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Range", f"bytes */{body.size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = span if span is not None else (0, body.size - 1)
        self.send_response(206 if span is not None else 200)
        for name, value in headers + validators:
            self.send_header(name, value)
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{body.size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not head:
            self._send_body(body, start, end - start + 1)

    def _not_modified(self, body: _Body) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
            return "*" in tags or body.etag in tags
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        return when.tzinfo is not None and int(body.modified) <= when.timestamp()

    def _range(self, body: _Body, last_modified: str) -> tuple[int, int] | None:
        """The single byte range asked for; None for the whole file (may raise the 416 error)."""
        value = self.headers.get("Range")
        if value is None:
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range.strip() not in (body.etag, last_modified):
            return None  # the client's copy is of another version: send it all
        unit, _, spec = value.partition("=")
        match = _RANGE.fullmatch(spec)
        if unit.strip().lower() != "bytes" or match is None:
            return None  # several ranges, or not a range this server knows: 200, all of it
        first, last = match.groups()
        if first:
            start = int(first)
            if last and int(last) < start:
                return None  # invalid, so ignored (RFC 9110)
            if start >= body.size:
                raise _UnsatisfiableRangeError
            return start, min(int(last), body.size - 1) if last else body.size - 1
        if not last:
            return None  # "bytes=-": invalid, so ignored
        if int(last) == 0 or body.size == 0:
            raise _UnsatisfiableRangeError
        return max(0, body.size - int(last)), body.size - 1

    def _send_body(self, body: _Body, start: int, length: int) -> None:
        if length == 0:
            return
        try:
            if body.data is not None:
                self.wfile.write(body.data[start : start + length])
                return
            if body.path is None:
                raise RuntimeError("a response body has neither bytes nor a file")
            with body.path.open("rb") as f:
                sent = self.connection.sendfile(f, start, length)
            if sent != length:
                self.close_connection = True  # the file shrank under us
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _plain(self, code: int, text: str, head: bool) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Content-Type-Options", "nosniff")
        # So that a page on an allowed origin can read the status and say what went wrong.
        for name, value in cors_headers(self.server.cors_origins, self.headers.get("Origin")):
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    cors_origins: Sequence[str] = (),
    connect_src: Sequence[str] = (),
    on_request: RequestHook | None = None,
    static_dir: Path = STATIC_DIR,
) -> WsdServer:
    """A server (not yet serving) for the app and ``model_dir``; port 0 picks a free one.

    ``cors_origins`` may read the model cross-origin; ``connect_src`` adds
    origins the page may fetch a model from (``?model=https://...``).
    ``on_request`` is called with (method, URL path) of every request.
    Raises FileNotFoundError for a missing model directory, ValueError for a
    malformed origin and SiteError when the app cannot be rendered.
    """
    model = Path(model_dir)
    if not model.is_dir():
        raise FileNotFoundError(
            f"model directory {model} does not exist; build one with wsd-compile"
        )
    return WsdServer(
        (host, port),
        model_dir=model,
        static_dir=static_dir,
        cors_origins=cors_origins,
        connect_src=connect_src,
        on_request=on_request,
    )


def server_url(server: http.server.ThreadingHTTPServer) -> str:
    """The base URL a browser on this machine reaches ``server`` at."""
    host, port = server.server_address[:2]
    if server.address_family == socket.AF_INET6:
        return f"http://[{host!s}]:{port}/"
    return f"http://{host!s}:{port}/"


class Served(str):
    """The base URL of a running server (a ``str``), with the server and its request log."""

    server: WsdServer

    @property
    def url(self) -> str:
        return str(self)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, URL path) of every request so far: see `WsdServer.requests`."""
        return self.server.requests


@contextmanager
def serving(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    cors_origins: Sequence[str] = (),
    connect_src: Sequence[str] = (),
    on_request: RequestHook | None = None,
    static_dir: Path = STATIC_DIR,
) -> Iterator[Served]:
    """Serve in a background thread for the duration of the ``with``.

    Yields the base URL, a ``str`` that also has ``.url`` and ``.requests``
    (and ``.server``), so tests can count what the page fetched.
    """
    server = make_server(
        model_dir,
        host,
        port,
        cors_origins=cors_origins,
        connect_src=connect_src,
        on_request=on_request,
        static_dir=static_dir,
    )
    # A short poll interval makes leaving the `with` quick (shutdown waits for a poll).
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        base = Served(server_url(server))
        base.server = server
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
