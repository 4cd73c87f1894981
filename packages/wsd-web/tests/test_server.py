"""The static server: the app at /, the model at /model/, and the headers of each."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from wsd_web.cli import main
from wsd_web.server import STATIC_DIR, make_server, serving
from wsd_web.site import PRECACHE_MARKER, SiteError


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


# --- production headers, validators, ranges, CORS --------------------------------------------

SHARD = "shard-" + "0123456789abcdef" * 2 + ".bin"
SHARD_BYTES = bytes(range(256)) * 40
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture
def build(tmp_path: Path) -> Path:
    """A model directory as wsd-compile lays it out (the server parses none of it)."""
    d = tmp_path / "build"
    d.mkdir()
    (d / "manifest.json").write_text('{"version": 2}')
    (d / "model.wasm").write_bytes(b"\0asm\1\0\0\0" + bytes(100))
    (d / "tensor-cache.json").write_text("{}")
    (d / "tokenizer.json").write_text("{}")
    (d / SHARD).write_bytes(SHARD_BYTES)
    return d


@pytest.fixture(scope="module")
def app_with_sw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real app with a service worker of known content."""
    root = tmp_path_factory.mktemp("app") / "static"
    shutil.copytree(STATIC_DIR, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "sw.js").write_text(f"const PRECACHE = {PRECACHE_MARKER};\n")
    return root


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _request(
    base: str, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def _csp_sources(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in csp.split("; ")}


@pytest.mark.parametrize(
    ("path", "mime", "cache"),
    [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/index.html", "text/html; charset=utf-8", "no-cache"),
        ("/check.html", "text/html; charset=utf-8", "no-cache"),
        ("/js/app.js", "text/javascript", "no-cache"),
        ("/js/schedulers/common.js", "text/javascript", "no-cache"),
        ("/vendor/tvmjs/index.js", "text/javascript", "no-cache"),
        ("/app.css", "text/css", "no-cache"),
        ("/sw.js", "text/javascript", "no-cache"),
        ("/model/model.wasm", "application/wasm", "no-cache"),
        ("/model/manifest.json", "application/json", "no-cache"),
        ("/model/tensor-cache.json", "application/json", "no-cache"),
        ("/model/tokenizer.json", "application/json", "no-cache"),
        (f"/model/{SHARD}", "application/octet-stream", IMMUTABLE),
    ],
)
def test_each_kind_of_file_gets_its_headers(
    build: Path, app_with_sw: Path, path: str, mime: str, cache: str
) -> None:
    with serving(build, static_dir=app_with_sw) as base:
        status, headers, body = _request(base, path)
    assert status == 200 and body
    assert headers["Content-Type"] == mime
    assert headers["Cache-Control"] == cache
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Length"] == str(len(body))
    assert re.fullmatch(r'"[^"]+"', headers["ETag"])
    assert headers["Last-Modified"].endswith(" GMT")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; ")
    assert not [name for name in headers if name.lower().startswith("access-control-")]


def test_the_csp_is_strict_and_allows_exactly_the_served_import_map(build: Path) -> None:
    with serving(build, connect_src=["https://models.example.com"]) as base:
        for page in ("/", "/check.html"):
            _, headers, body = _request(base, page)
            csp = headers["Content-Security-Policy"]
            assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp
            sources = _csp_sources(csp)
            importmap = re.findall(rb'<script type="importmap">(.*?)</script>', body, re.S)
            assert len(importmap) == 1
            assert sources["script-src"] == [
                "'self'",
                "'wasm-unsafe-eval'",
                f"'{_sri(importmap[0])}'",
            ]
            assert sources["default-src"] == ["'none'"]
            assert sources["style-src"] == ["'self'"]
            assert sources["connect-src"] == ["'self'", "https://models.example.com"]
            assert sources["object-src"] == sources["base-uri"] == ["'none'"]
            assert sources["frame-ancestors"] == ["'none'"]


def test_integrity_attributes_and_the_import_map_match_the_served_bytes(build: Path) -> None:
    with serving(build) as base:
        _, _, page = _request(base, "/")
        html = page.decode()
        pinned = re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', html)
        assert {ref for ref, _ in pinned} == {
            "app.css",
            "vendor/tvmjs/index.js",
            "vendor/tokenizers/index.js",
            "js/app.js",
        }
        for ref, integrity in pinned:
            status, _, body = _request(base, "/" + ref)
            assert status == 200 and integrity == _sri(body), ref
        table = json.loads(re.findall(r'<script type="importmap">(.*?)</script>', html, re.S)[0])
        modules = sorted(
            p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.glob("js/**/*.js")
        )
        assert sorted(k.removeprefix("./") for k in table["integrity"]) == modules
        for url, integrity in table["integrity"].items():
            assert integrity == _sri(_request(base, "/" + url.removeprefix("./"))[2]), url
        assert html.index('type="importmap"') < html.index("<script src=")


def test_the_service_worker_is_served_with_its_precache_list(
    build: Path, app_with_sw: Path
) -> None:
    with serving(build, static_dir=app_with_sw) as base:
        _, _, sw = _request(base, "/sw.js")
        _, _, index = _request(base, "/")
        listing = json.loads(sw.decode().removeprefix("const PRECACHE = ").removesuffix(";\n"))
        urls = [entry["url"] for entry in listing]
        assert urls == sorted(urls) and urls[:2] == ["./", "app.css"]
        assert {"index.html", "js/app.js", "vendor/tvmjs/index.js"} <= set(urls)
        assert not {"sw.js", "check.html", "vendor/tvmjs/LICENSE"} & set(urls)
        for entry in listing:
            path = "/" + entry["url"].removeprefix("./")
            assert entry["integrity"] == _sri(_request(base, path)[2]), path
        assert listing[0]["integrity"] == _sri(index)


@pytest.mark.parametrize("path", ["/", "/js/app.js", "/model/manifest.json", f"/model/{SHARD}"])
def test_revalidation_answers_304(build: Path, path: str) -> None:
    with serving(build) as base:
        _, headers, _ = _request(base, path)
        etag, modified = headers["ETag"], headers["Last-Modified"]
        status, again, body = _request(base, path, headers={"If-None-Match": etag})
        assert (status, body) == (304, b"") and again["ETag"] == etag
        assert again["Cache-Control"] == headers["Cache-Control"]
        assert _request(base, path, headers={"If-None-Match": f'"x", W/{etag}'})[0] == 304
        assert _request(base, path, headers={"If-None-Match": '"other"'})[0] == 200
        assert _request(base, path, headers={"If-Modified-Since": modified})[0] == 304
        old = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert _request(base, path, headers={"If-Modified-Since": old})[0] == 200


def test_a_changed_file_gets_a_new_etag(build: Path) -> None:
    with serving(build) as base:
        before = _request(base, "/model/manifest.json")[1]["ETag"]
        (build / "manifest.json").write_text('{"version": 2, "build": "next"}')
        status, headers, body = _request(
            base, "/model/manifest.json", headers={"If-None-Match": before}
        )
        assert status == 200 and headers["ETag"] != before and b"next" in body


def test_the_pages_follow_the_app_on_disk(build: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(STATIC_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    with serving(build, static_dir=app) as base:
        _, first, page = _request(base, "/")
        module = app / "js" / "webgpu_device.js"
        module.write_bytes(module.read_bytes() + b"\n// changed\n")
        _, second, changed = _request(base, "/")
        assert _sri(module.read_bytes()) in changed.decode() and changed != page
        assert second["ETag"] != first["ETag"]
        assert second["Content-Security-Policy"] != first["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [("bytes=10-19", 10, 19), ("bytes=10000-", 10000, None), ("bytes=-300", -300, None),
     ("bytes=0-99999999", 0, None), ("bytes=-99999999", 0, None)],
)  # fmt: skip
def test_single_byte_ranges_get_206(build: Path, value: str, start: int, end: int | None) -> None:
    expected = SHARD_BYTES[start : None if end is None else end + 1]
    first = start % len(SHARD_BYTES)
    with serving(build) as base:
        status, headers, body = _request(base, f"/model/{SHARD}", headers={"Range": value})
    assert (status, body) == (206, expected)
    last = first + len(expected) - 1
    assert headers["Content-Range"] == f"bytes {first}-{last}/{len(SHARD_BYTES)}"
    assert headers["Content-Length"] == str(len(expected))
    assert headers["Cache-Control"] == IMMUTABLE


def test_ranges_of_rendered_pages_work_too(build: Path) -> None:
    with serving(build) as base:
        page = _request(base, "/")[2]
        status, headers, body = _request(base, "/", headers={"Range": "bytes=0-14"})
    assert (status, body) == (206, page[:15])
    assert headers["Content-Range"] == f"bytes 0-14/{len(page)}"


@pytest.mark.parametrize("value", ["bytes=10240-", "bytes=20000-20001", "bytes=-0"])
def test_unsatisfiable_ranges_get_416(build: Path, value: str) -> None:
    with serving(build) as base:
        status, headers, body = _request(base, f"/model/{SHARD}", headers={"Range": value})
    assert (status, body) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{len(SHARD_BYTES)}"


@pytest.mark.parametrize(
    "headers",
    [{"Range": "bytes=0-1,5-6"}, {"Range": "items=0-1"}, {"Range": "bytes=9-2"},
     {"Range": "bytes=0-1", "If-Range": '"stale"'}],
)  # fmt: skip
def test_other_ranges_get_the_whole_file(build: Path, headers: dict[str, str]) -> None:
    with serving(build) as base:
        status, _, body = _request(base, f"/model/{SHARD}", headers=headers)
    assert (status, body) == (200, SHARD_BYTES)


def test_if_range_with_the_current_etag_gets_the_range(build: Path) -> None:
    with serving(build) as base:
        etag = _request(base, f"/model/{SHARD}")[1]["ETag"]
        status, _, body = _request(
            base, f"/model/{SHARD}", headers={"Range": "bytes=1-2", "If-Range": etag}
        )
    assert (status, body) == (206, SHARD_BYTES[1:3])


@pytest.mark.parametrize("path", ["/", "/js/app.js", "/model/model.wasm", f"/model/{SHARD}"])
def test_head_sends_the_headers_of_get_and_no_body(build: Path, path: str) -> None:
    with serving(build) as base:
        _, got, body = _request(base, path)
        status, head, nothing = _request(base, path, "HEAD")
    assert (status, nothing) == (200, b"")
    assert head["Content-Length"] == str(len(body))
    for name in ("Content-Type", "Cache-Control", "ETag", "Content-Security-Policy"):
        assert head[name] == got[name]


def test_cors_is_off_by_default(build: Path) -> None:
    with serving(build) as base:
        _, headers, _ = _request(base, f"/model/{SHARD}", headers={"Origin": "https://app.example"})
        status, preflight, _ = _request(
            base,
            f"/model/{SHARD}",
            "OPTIONS",
            {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
    assert status == 204
    for h in (headers, preflight):
        assert not [n for n in h if n.lower().startswith("access-control-")]
        assert "Vary" not in h


def test_cors_answers_only_allow_listed_origins(build: Path) -> None:
    allowed = "https://app.example"
    with serving(build, cors_origins=[allowed, "http://localhost:5173"]) as base:
        _, headers, _ = _request(base, f"/model/{SHARD}", headers={"Origin": allowed})
        assert headers["Access-Control-Allow-Origin"] == allowed
        assert headers["Vary"] == "Origin"
        exposed = {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
        assert exposed == {"Content-Length", "Content-Range", "Accept-Ranges", "ETag"}
        status, ranged, _ = _request(
            base, f"/model/{SHARD}", headers={"Origin": allowed, "Range": "bytes=0-0"}
        )
        assert status == 206 and ranged["Access-Control-Allow-Origin"] == allowed
        status, missing, _ = _request(base, "/model/missing.bin", headers={"Origin": allowed})
        assert status == 404 and missing["Access-Control-Allow-Origin"] == allowed
        _, other, _ = _request(base, f"/model/{SHARD}", headers={"Origin": "https://evil.example"})
        assert not [n for n in other if n.lower().startswith("access-control-")]
        assert other["Vary"] == "Origin"
        status, preflight, body = _request(
            base,
            f"/model/{SHARD}",
            "OPTIONS",
            {
                "Origin": allowed,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "range",
            },
        )
        assert (status, body) == (204, b"")
        assert preflight["Access-Control-Allow-Origin"] == allowed
        assert {m.strip() for m in preflight["Access-Control-Allow-Methods"].split(",")} == {
            "GET",
            "HEAD",
        }
        assert preflight["Access-Control-Allow-Headers"] == "Range"
        _, refused, _ = _request(
            base,
            f"/model/{SHARD}",
            "OPTIONS",
            {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "Access-Control-Allow-Origin" not in refused


@pytest.mark.parametrize(
    "path",
    ["/model/", "/js/", "/vendor", "/model/../../etc/passwd", "/model/%2e%2e/%2e%2e/etc/passwd",
     "/..%2f..%2fetc/passwd", "/model/%00", "/.hidden", "/model/nope.bin"],
)  # fmt: skip
def test_no_listings_and_nothing_outside_the_roots(build: Path, path: str) -> None:
    (build / ".hidden").write_text("secret")
    with serving(build) as base:
        assert _request(base, path)[0] == 404
        assert _request(base, path, "HEAD")[0] == 404


def test_requests_are_recorded_for_tests(build: Path) -> None:
    seen: list[tuple[str, str]] = []
    with serving(build, on_request=lambda m, p: seen.append((m, p))) as base:
        assert base.url == str(base)
        _request(base, "/model/manifest.json")
        _request(base, f"/model/{SHARD}", "HEAD")
        _request(base, "/model/missing.bin")
        expected = [
            ("GET", "/model/manifest.json"),
            ("HEAD", f"/model/{SHARD}"),
            ("GET", "/model/missing.bin"),
        ]
        assert base.requests == expected
    assert seen == expected


def test_a_broken_app_fails_at_start(build: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(STATIC_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "vendor" / "tvmjs" / "index.js").unlink()
    with pytest.raises(SiteError, match=r"vendor/tvmjs/index\.js"):
        make_server(build, port=0, static_dir=app)


def test_serve_refuses_a_malformed_origin_in_one_line(
    build: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(build), "--port", "0", "--cors-origin", "https://a.example/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an origin: give scheme://host[:port]" in err[0]
    with pytest.raises(ValueError, match="not an origin"):
        make_server(build, port=0, connect_src=["cdn.example"])


def test_serving_beyond_localhost_warns_about_secure_contexts(build: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsd_web", "serve", str(build), "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert "open http://0.0.0.0:" in proc.stdout.readline()
        warning = proc.stderr.readline()
        assert "secure contexts (HTTPS or localhost)" in warning and "WebGPU" in warning
    finally:
        proc.terminate()
        proc.wait(timeout=10)
