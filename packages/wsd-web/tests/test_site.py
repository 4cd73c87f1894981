"""Rendering the app (integrity, import map, precache list, CSP) and `wsd-web export`."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from wsd_web.cli import main
from wsd_web.site import (
    PRECACHE_MARKER,
    STATIC_DIR,
    SiteError,
    export_site,
    headers_for,
    parse_origin,
    render_site,
)

SHARD = "shard-" + "0123456789abcdef" * 2 + ".bin"

INDEX = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="app.css">
  <script src="vendor/lib/index.js"></script>
  <script type="module" src="js/main.js"></script>
</head>
<body><p>caf\u00e9 <a href="js/main.js">source</a></p></body>
</html>
"""

PLAIN = """<!doctype html>
<html><head><link rel="stylesheet" href="/plain.css" />
<script src="https://cdn.example.com/x.js"></script></head><body></body></html>
"""

SW = f"const PRECACHE = {PRECACHE_MARKER};\nself.addEventListener('install', () => {{}});\n"


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A small app laid out like the real one."""
    root = tmp_path / "static"
    files = {
        "index.html": INDEX,
        "plain.html": PLAIN,
        "app.css": "body { color: red }\n",
        "plain.css": "p { margin: 0 }\n",
        "js/main.js": 'import { f } from "./lib/util.js";\nf();\n',
        "js/lib/util.js": "export function f() {}\n",
        "vendor/lib/index.js": "var lib = 1;\n",
        "vendor/lib/LICENSE": "license text\n",
        "vendor/lib/package.json": '{"type": "commonjs"}\n',
        "sw.js": SW,
        "js/__pycache__/junk.pyc": "x",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    d = tmp_path / "build"
    d.mkdir()
    (d / "manifest.json").write_text('{"version": 2}')
    (d / "model.wasm").write_bytes(b"\0asm\1\0\0\0")
    (d / "tensor-cache.json").write_text("{}")
    (d / "tokenizer.json").write_text("{}")
    (d / SHARD).write_bytes(bytes(range(256)) * 4)
    return d


def _importmap(html: str) -> str:
    found = re.findall(r'<script type="importmap">(.*?)</script>', html, re.S)
    assert len(found) == 1
    return str(found[0])


def test_pages_get_integrity_and_an_import_map_and_nothing_else_changes(app: Path) -> None:
    site = render_site(app)
    html = site.files["index.html"].decode()
    for rel in ("app.css", "vendor/lib/index.js", "js/main.js"):
        assert f'"{rel}" integrity="{_sri((app / rel).read_bytes())}"' in html
    table = json.loads(_importmap(html))
    assert table == {
        "integrity": {
            "./js/lib/util.js": _sri((app / "js/lib/util.js").read_bytes()),
            "./js/main.js": _sri((app / "js/main.js").read_bytes()),
        }
    }
    # The import map comes first, with the scripts' indentation; the rest is the page.
    assert html.index('<script type="importmap">') < html.index("<script src=")
    restored = re.sub(r' integrity="[^"]*"', "", html)
    restored = re.sub(r'<script type="importmap">.*?</script>\n  ', "", restored, flags=re.S)
    assert restored.encode() == (app / "index.html").read_bytes()
    assert "caf\u00e9" in html and 'href="js/main.js">' in html  # <a> untouched


def test_a_page_without_modules_gets_no_import_map(app: Path) -> None:
    html = render_site(app).files["plain.html"].decode()
    assert "importmap" not in html
    css = _sri((app / "plain.css").read_bytes())
    assert f'href="/plain.css" integrity="{css}" />' in html
    assert '<script src="https://cdn.example.com/x.js"></script>' in html  # other origins alone


def test_csp_allows_exactly_the_inline_import_map(app: Path) -> None:
    site = render_site(app, connect_src=["https://Models.example.com:443"])
    importmap = _importmap(site.files["index.html"].decode())
    assert site.script_hashes == (_sri(importmap.encode()),)
    assert site.csp == (
        "default-src 'none'; "
        f"script-src 'self' 'wasm-unsafe-eval' '{_sri(importmap.encode())}'; "
        "style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self' https://models.example.com; worker-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
    )


def test_a_missing_referenced_file_fails_loudly(app: Path) -> None:
    (app / "vendor/lib/index.js").unlink()
    with pytest.raises(SiteError, match=r"index\.html: <script> refers to vendor/lib/index\.js"):
        render_site(app)


def test_a_stale_integrity_attribute_is_refused(app: Path) -> None:
    page = INDEX.replace('href="app.css"', 'href="app.css" integrity="sha384-old"')
    (app / "index.html").write_text(page)
    with pytest.raises(SiteError, match="stale integrity"):
        render_site(app)


def test_the_service_worker_gets_the_app_shell_with_integrity(app: Path) -> None:
    site = render_site(app)
    text = site.files["sw.js"].decode()
    assert PRECACHE_MARKER not in text
    listing = json.loads(text.split("const PRECACHE = ", 1)[1].split(";\n", 1)[0])
    index = site.files["index.html"]
    expected = {
        "./": _sri(index),
        "index.html": _sri(index),
        "app.css": _sri((app / "app.css").read_bytes()),
        "js/lib/util.js": _sri((app / "js/lib/util.js").read_bytes()),
        "js/main.js": _sri((app / "js/main.js").read_bytes()),
        "vendor/lib/index.js": _sri((app / "vendor/lib/index.js").read_bytes()),
    }
    assert listing == [{"url": url, "integrity": expected[url]} for url in sorted(expected)]
    assert text.endswith("self.addEventListener('install', () => {});\n")


@pytest.mark.parametrize("text", ["const PRECACHE = [];\n", SW + SW])
def test_the_service_worker_needs_the_marker_exactly_once(app: Path, text: str) -> None:
    (app / "sw.js").write_text(text)
    with pytest.raises(SiteError, match="exactly once"):
        render_site(app)


def test_the_real_app_renders_and_pins_every_module() -> None:
    site = render_site()
    modules = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.glob("js/**/*.js"))
    for page in ("index.html", "check.html"):
        table = json.loads(_importmap(site.files[page].decode()))["integrity"]
        assert sorted(k.removeprefix("./") for k in table) == modules
    assert "'unsafe-eval'" not in site.csp and "'unsafe-inline'" not in site.csp


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://a.example", "https://a.example"),
        ("HTTPS://A.Example:443", "https://a.example"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_origins_are_normalized_as_browsers_send_them(value: str, origin: str) -> None:
    assert parse_origin(value) == origin


@pytest.mark.parametrize(
    "value",
    ["a.example", "https://a.example/", "https://a.example/models", "ftp://a.example", "*",
     "https://a.example:99999", "https://user@a.example", "null"],
)  # fmt: skip
def test_malformed_origins_are_refused_with_the_form_to_use(value: str) -> None:
    with pytest.raises(ValueError, match=r"give scheme://host\[:port\]"):
        parse_origin(value)


def _parse_headers_file(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    rules: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            rules.append((line, []))
        else:
            name, _, value = line.strip().partition(": ")
            rules[-1][1].append((name, value))
    return rules


def _applied(rules: list[tuple[str, list[tuple[str, str]]]], url: str) -> list[tuple[str, str]]:
    """What Netlify / Cloudflare Pages send for ``url``: every matching rule's headers."""
    out: list[tuple[str, str]] = []
    for pattern, headers in rules:
        if re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), url):
            out += headers
    return out


def test_export_writes_the_site_the_model_and_headers_hosts_apply_like_the_server(
    app: Path, model: Path, tmp_path: Path
) -> None:
    out = export_site(model, tmp_path / "site", static_dir=app, connect_src=["https://m.example"])
    site = render_site(app, connect_src=["https://m.example"])
    for rel in ("index.html", "plain.html", "sw.js"):
        assert (out / rel).read_bytes() == site.files[rel]
    for rel in ("app.css", "js/lib/util.js", "vendor/lib/LICENSE"):
        assert (out / rel).read_bytes() == (app / rel).read_bytes()
    assert not (out / "js/__pycache__").exists()
    for f in model.iterdir():
        assert (out / "model" / f.name).read_bytes() == f.read_bytes()
        # Same filesystem: hard links, not copies.
        assert (out / "model" / f.name).stat().st_ino == f.stat().st_ino
    rules = _parse_headers_file((out / "_headers").read_text())
    assert len(rules) < 100  # Cloudflare Pages' limit
    urls = ["/", "/plain"] + [
        "/" + p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    ]
    urls.remove("/_headers")
    for url in urls:
        applied = _applied(rules, url)
        names = [name.lower() for name, _ in applied]
        assert len(names) == len(set(names)), f"{url}: a header set twice would be comma-joined"
        served = "plain.html" if url == "/plain" else url
        expected = [
            h
            for h in headers_for(served, site=site)
            if h[0] not in ("Content-Type", "Accept-Ranges")
        ]
        assert sorted(applied) == sorted(expected), url
    shard_rule = dict(rules)["/model/shard-*"]
    assert shard_rule == [("Cache-Control", "public, max-age=31536000, immutable")]
    assert ("Cache-Control", "no-cache") in _applied(rules, "/model/manifest.json")
    assert ("Cache-Control", "no-cache") in _applied(rules, "/model/model.wasm")


def test_export_with_a_cors_origin_lets_that_origin_read_the_model(
    app: Path, model: Path, tmp_path: Path
) -> None:
    out = export_site(model, tmp_path / "site", static_dir=app, cors_origins=["https://a.example"])
    rules = _parse_headers_file((out / "_headers").read_text())
    applied = dict(_applied(rules, f"/model/{SHARD}"))
    assert applied["Access-Control-Allow-Origin"] == "https://a.example"
    assert "ETag" in applied["Access-Control-Expose-Headers"]
    with pytest.raises(SiteError, match="one CORS origin"):
        export_site(
            model, tmp_path / "two", static_dir=app, cors_origins=["https://a.x", "https://b.x"]
        )
    assert not (tmp_path / "two").exists()


def test_export_into_an_empty_directory(app: Path, model: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    export_site(model, tmp_path / "empty", static_dir=app)
    assert (tmp_path / "empty" / "model" / "manifest.json").is_file()


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_export_refuses_a_non_empty_out_and_leaves_it_alone(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert main(["export", str(out), "--model", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not empty" in err[0]
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("problem", ["missing", "no-manifest"])
def test_export_of_a_bad_model_is_one_line_and_writes_nothing(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    if problem == "missing":
        source, message = tmp_path / "nope", "does not exist; build one with wsd-compile"
    else:
        (model / "manifest.json").unlink()
        source, message = model, "has no manifest.json"
    out = tmp_path / "out" / "site"
    assert main(["export", str(out), "--model", str(source)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "out").exists()


def test_export_cleans_up_when_writing_fails(app: Path, model: Path, tmp_path: Path) -> None:
    broken = model / "dangling.json"
    broken.symlink_to(tmp_path / "gone")  # listed, but cannot be copied
    with pytest.raises(OSError):
        export_site(model, tmp_path / "site", static_dir=app)
    assert not (tmp_path / "site").exists()
    assert _leftovers(tmp_path) == []


def test_export_command_prints_where_it_wrote(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert main(["export", str(out), "--model", str(model)]) == 0
    assert str(out) in capsys.readouterr().out
    assert (out / "index.html").is_file() and (out / "_headers").is_file()
    assert (out / "vendor/tvmjs/index.js").is_file()
    assert (out / "model" / SHARD).is_file()


def test_export_command_refuses_a_malformed_origin(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert main(["export", str(out), "--model", str(model), "--cors-origin", "a.example"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'a.example' is not an origin" in err[0]
    assert not out.exists()
