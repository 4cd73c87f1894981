"""The deployable site: the app's pages with integrity pinned, its headers, and ``export``.

`render_site` reads the app (package data) as it is on disk and returns what
has to differ from the files there: every HTML page with ``integrity=`` on
its local scripts and stylesheets and, for pages with ES modules, an import
map whose ``integrity`` table pins every module under ``js/``; ``sw.js`` with
its precache list filled in; and the Content-Security-Policy that allows
exactly those inline import maps. `headers_for` is the one header policy,
used by ``wsd-web serve`` and written out as ``_headers`` by `export_site`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wsd_artifacts import atomic_directory

STATIC_DIR = Path(__file__).parent / "static"

#: The text in ``sw.js`` that `render_site` replaces with the precache list.
PRECACHE_MARKER = "/* wsd:precache */ []"

#: File names with a content hash in them (``shard-<32 hex>.bin``): they never change.
CONTENT_HASHED = re.compile(r"-[0-9a-f]{16,}\.[a-z0-9]+$")

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".bin": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
}

#: Response headers a cross-origin page may read (``fetch`` resumes with ranges).
CORS_EXPOSED = "Content-Length, Content-Range, Accept-Ranges, ETag"

_ORIGIN = re.compile(r"(https?)://([a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(:(\d{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SKIPPED = {"__pycache__", "node_modules"}
_CHUNK = 1 << 20


class SiteError(Exception):
    """The app or the model cannot be rendered or exported as asked."""


@dataclass(frozen=True)
class Site:
    """The rendered app: what differs from the files on disk, and its CSP.

    ``files`` maps URL paths relative to the site root (``"index.html"``,
    ``"check.html"``, ``"sw.js"``) to the bytes to serve instead of the file;
    ``script_hashes`` are the CSP sources (``'sha384-...'``) of the inline
    import maps; ``modified`` is the newest modification time among the app's
    files (the rendered files' Last-Modified).
    """

    files: dict[str, bytes]
    csp: str
    script_hashes: tuple[str, ...] = ()
    connect_src: tuple[str, ...] = ()
    modified: float = 0.0
    integrity: dict[str, str] = field(default_factory=dict)


def sri(data: bytes) -> str:
    """The Subresource Integrity value of ``data``: ``sha384-<base64>``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def file_sri(path: Path) -> str:
    """`sri` of a file's bytes, read in chunks."""
    digest = hashlib.sha384()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return "sha384-" + base64.b64encode(digest.digest()).decode()


def parse_origin(value: str) -> str:
    """``scheme://host[:port]`` (http or https), normalized as browsers send ``Origin``.

    Raises ValueError with a message that says what an origin looks like.
    """
    text = value.strip().lower()
    match = _ORIGIN.fullmatch(text)
    port = match.group(5) if match else None
    if match is None or (port is not None and not 0 < int(port) < 65536):
        raise ValueError(
            f"{value!r} is not an origin: give scheme://host[:port] with http or https "
            "and no path, e.g. https://models.example.com"
        )
    scheme, host = match.group(1), match.group(2)
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def content_security_policy(
    script_hashes: Iterable[str] = (), connect_src: Iterable[str] = ()
) -> str:
    """The app's CSP: its own files, WebAssembly compiled from bytes, the inline import maps.

    ``'wasm-unsafe-eval'`` lets the page compile ``model.wasm`` (fetched, hashed,
    then instantiated from bytes) without allowing JavaScript ``eval``;
    ``connect_src`` adds origins the page may fetch a model from.
    """
    script = ["'self'", "'wasm-unsafe-eval'", *(f"'{h}'" for h in script_hashes)]
    connect = ["'self'", *connect_src]
    return "; ".join(
        (
            "default-src 'none'",
            "script-src " + " ".join(script),
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "connect-src " + " ".join(connect),
            "worker-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        )
    )


def is_content_hashed(url_path: str) -> bool:
    """Whether the file's name carries its content hash (so it can be cached forever)."""
    return CONTENT_HASHED.search(url_path.rsplit("/", 1)[-1]) is not None


def content_type(url_path: str) -> str:
    """The Content-Type browsers need: ``application/wasm``, ``text/javascript``, ..."""
    suffix = Path(url_path).suffix.lower()
    if suffix in MIME_TYPES:
        return MIME_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(url_path)
    return guessed or "application/octet-stream"


def cache_control(url_path: str) -> str:
    """Immutable for content-hashed files; everything else is revalidated each time."""
    return IMMUTABLE if is_content_hashed(url_path) else REVALIDATE


def headers_for(
    url_path: str,
    *,
    site: Site,
    cors_origins: Sequence[str] = (),
    request_origin: str | None = None,
) -> list[tuple[str, str]]:
    """Every header a file at ``url_path`` (relative to the site root) is served with.

    Validators (ETag, Last-Modified) and lengths depend on the bytes and are
    added by the server. CORS headers appear only when ``request_origin`` is
    one of ``cors_origins``; ``Vary: Origin`` whenever CORS is on.
    """
    path = url_path.lstrip("/") or "index.html"
    headers = [
        ("Content-Type", content_type(path)),
        ("Cache-Control", cache_control(path)),
        ("Accept-Ranges", "bytes"),
        ("Content-Security-Policy", site.csp),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
    return headers + cors_headers(cors_origins, request_origin)


def cors_headers(cors_origins: Sequence[str], request_origin: str | None) -> list[tuple[str, str]]:
    """``Vary: Origin`` when CORS is on; the grant when ``request_origin`` is allow-listed."""
    if not cors_origins:
        return []
    if request_origin is None or request_origin not in cors_origins:
        return [("Vary", "Origin")]
    return [
        ("Vary", "Origin"),
        ("Access-Control-Allow-Origin", request_origin),
        ("Access-Control-Expose-Headers", CORS_EXPOSED),
    ]


def app_files(static_dir: Path = STATIC_DIR) -> Iterator[tuple[str, Path]]:
    """``(URL path, file)`` for every file of the app, sorted; no caches or hidden files."""
    for dirpath, dirnames, filenames in os.walk(static_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / name
            yield path.relative_to(static_dir).as_posix(), path


def fingerprint(static_dir: Path = STATIC_DIR) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the app's files: changes when a file does."""
    out = []
    for rel, path in app_files(static_dir):
        st = path.stat()
        out.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(out)


class _Tags(HTMLParser):
    """Start tags with their exact source text and position."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[tuple[int, int], str, dict[str, str | None], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((self.getpos(), tag, dict(attrs), self.get_starttag_text() or ""))

    handle_startendtag = handle_starttag


class _Renderer:
    def __init__(self, static_dir: Path) -> None:
        self.root = static_dir.resolve()
        self._hashes: dict[str, str] = {}

    def integrity(self, rel: str) -> str:
        if rel not in self._hashes:
            self._hashes[rel] = file_sri(self.root / rel)
        return self._hashes[rel]

    def local_file(self, page: str, tag: str, ref: str) -> str | None:
        """The app file ``ref`` names (relative to the root), None for other origins/data."""
        parts = urlsplit(ref)
        if parts.scheme or parts.netloc or not parts.path:
            return None
        target = (self.root / unquote(parts.path).lstrip("/")).resolve()
        if not target.is_relative_to(self.root):
            raise SiteError(f"{page}: <{tag}> refers to {ref}, outside the app")
        if not target.is_file():
            raise SiteError(
                f"{page}: <{tag}> refers to {ref}, but {target} does not exist "
                "(run scripts/setup.sh to vendor the third-party scripts)"
            )
        return target.relative_to(self.root).as_posix()

    def modules(self) -> dict[str, str]:
        js = self.root / "js"
        if not js.is_dir():
            return {}
        return {
            f"./{rel}": self.integrity(rel)
            for rel, _ in app_files(self.root)
            if rel.startswith("js/") and rel.endswith(".js")
        }

    def page(self, name: str) -> tuple[bytes, str | None, list[str]]:
        """The rendered page, its import map's text (if any) and the files it loads."""
        text = (self.root / name).read_bytes().decode("utf-8")
        parser = _Tags()
        parser.feed(text)
        parser.close()
        line_starts = [0]
        for source_line in text.split("\n")[:-1]:
            line_starts.append(line_starts[-1] + len(source_line) + 1)
        edits: list[tuple[int, int, str]] = []
        loads: list[str] = []
        first_script: int | None = None
        has_module = False
        for (line, col), tag, attrs, source in parser.tags:
            start = line_starts[line - 1] + col
            if text[start : start + len(source)] != source:
                raise SiteError(f"{name}: could not locate <{tag}> in the page")
            rels = (attrs.get("rel") or "").lower().split()
            if tag == "script":
                first_script = start if first_script is None else first_script
                kind = (attrs.get("type") or "").strip().lower()
                if kind == "importmap":
                    raise SiteError(f"{name}: has its own import map; the server writes it")
                has_module = has_module or kind == "module"
                ref = attrs.get("src")
            elif tag == "link" and ("stylesheet" in rels or "modulepreload" in rels):
                ref = attrs.get("href")
            else:
                continue
            rel = self.local_file(name, tag, ref) if ref else None
            if rel is None:
                continue
            loads.append(rel)
            value = self.integrity(rel)
            if "integrity" in attrs:
                if attrs["integrity"] != value:
                    raise SiteError(f"{name}: <{tag}> for {rel} has a stale integrity attribute")
                continue
            close = len(source) - (2 if source.endswith("/>") else 1)
            body = source[:close].rstrip()
            new = f'{body} integrity="{value}"{source[len(body) :]}'
            edits.append((start, start + len(source), new))
        importmap = None
        if has_module and first_script is not None:
            lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.modules().items()]
            table = '{"integrity": {\n' + ",\n".join(lines) + "\n}}"
            importmap = table.replace("<", "\\u003c")
            line_start = text.rfind("\n", 0, first_script) + 1
            indent = text[line_start:first_script]
            indent = indent if indent.strip() == "" else ""
            tag = f'<script type="importmap">{importmap}</script>\n{indent}'
            edits.append((first_script, first_script, tag))
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        return text.encode("utf-8"), importmap, loads


def render_site(static_dir: Path = STATIC_DIR, *, connect_src: Sequence[str] = ()) -> Site:
    """Render the app as it is on disk now (see the module's docstring).

    Raises SiteError when a page refers to a local file that is missing or
    ``sw.js`` does not hold `PRECACHE_MARKER` exactly once.
    """
    root = Path(static_dir)
    if not root.is_dir():
        raise SiteError(f"the app directory {root} does not exist")
    renderer = _Renderer(root)
    files: dict[str, bytes] = {}
    hashes: list[str] = []
    loads: dict[str, list[str]] = {}
    inputs = list(app_files(root))
    for rel, _ in inputs:
        if "/" in rel or not rel.endswith(".html"):
            continue
        files[rel], importmap, loads[rel] = renderer.page(rel)
        if importmap is not None and sri(importmap.encode()) not in hashes:
            hashes.append(sri(importmap.encode()))
    if (root / "sw.js").is_file():
        files["sw.js"] = _render_sw(root, renderer, files, loads)
    origins = tuple(parse_origin(o) for o in connect_src)
    return Site(
        files=files,
        csp=content_security_policy(hashes, origins),
        script_hashes=tuple(hashes),
        connect_src=origins,
        modified=max((path.stat().st_mtime for _, path in inputs), default=0.0),
        integrity={
            **{rel: renderer.integrity(rel) for rel, _ in inputs if rel not in files},
            **{rel: sri(data) for rel, data in files.items()},
        },
    )


def _render_sw(
    root: Path, renderer: _Renderer, pages: dict[str, bytes], loads: dict[str, list[str]]
) -> bytes:
    text = (root / "sw.js").read_bytes().decode("utf-8")
    if text.count(PRECACHE_MARKER) != 1:
        raise SiteError(f"sw.js must contain {PRECACHE_MARKER!r} exactly once")
    if "index.html" not in pages:
        raise SiteError("sw.js precaches the app shell, but there is no index.html")
    shell = {"./": sri(pages["index.html"]), "index.html": sri(pages["index.html"])}
    for rel in loads["index.html"]:
        shell[rel] = renderer.integrity(rel)
    for url, value in renderer.modules().items():
        shell[url.removeprefix("./")] = value
    entries = [{"url": url, "integrity": shell[url]} for url in sorted(shell)]
    listing = "[\n" + ",\n".join(f"  {json.dumps(e)}" for e in entries) + "\n]"
    listing = listing.replace("<", "\\u003c")
    return text.replace(PRECACHE_MARKER, listing).encode("utf-8")


def _model_files(model_dir: Path) -> list[tuple[str, Path]]:
    if not (model_dir / "manifest.json").is_file():
        raise SiteError(
            f"{model_dir} has no manifest.json: give a directory written by wsd-compile"
        )
    return list(app_files(model_dir))


_NOT_IN_HEADERS_FILE = {"content-type", "accept-ranges"}


def headers_file(
    site: Site,
    urls: Sequence[str],
    *,
    cors_origins: Sequence[str] = (),
) -> str:
    """A Netlify / Cloudflare Pages ``_headers`` file giving each of ``urls`` `headers_for`.

    Those hosts merge every rule that matches a request and join repeated
    header names with commas, so each header is set by exactly one rule per
    URL: what all URLs share under ``/*``, the rest per directory, per
    content-hashed prefix (``/model/shard-*``) or per file. The host's own
    Content-Type (it knows .wasm) and Accept-Ranges stay.
    """
    if len(cors_origins) > 1:
        raise SiteError(
            "a static _headers file can allow one CORS origin (Access-Control-Allow-Origin "
            "takes a single value); serve with wsd-web serve or a server that echoes the origin"
        )
    origin = cors_origins[0] if cors_origins else None
    wanted: dict[str, tuple[tuple[str, str], ...]] = {}
    for url in urls:
        headers = headers_for(url, site=site, cors_origins=cors_origins, request_origin=origin)
        wanted[url] = tuple(h for h in headers if h[0].lower() not in _NOT_IN_HEADERS_FILE)
    common = [h for h in next(iter(wanted.values()), ()) if all(h in v for v in wanted.values())]
    rest = {url: tuple(h for h in v if h not in common) for url, v in wanted.items()}
    rules: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    covered: set[str] = set()
    for prefix in _group_prefixes(rest):
        group = [url for url in rest if url.startswith(prefix)]
        values = {rest[url] for url in group}
        if len(values) == 1 and not covered.intersection(group):
            rules.append((prefix + "*", values.pop()))
            covered.update(group)
    rules += [(url, rest[url]) for url in rest if url not in covered]
    blocks = ["# Written by wsd-web export: the headers wsd-web serve sends (docs/hosting.md)."]
    for pattern, rule in [("/*", tuple(common)), *sorted(rules)]:
        if rule:
            blocks.append("\n".join([pattern, *(f"  {name}: {value}" for name, value in rule)]))
    return "\n\n".join(blocks) + "\n"


def _group_prefixes(urls: Iterable[str]) -> list[str]:
    """Candidate prefixes for one wildcard rule: top directories, content-hashed names."""
    prefixes = set()
    for url in urls:
        name = url.rsplit("/", 1)[-1]
        match = CONTENT_HASHED.search(name)
        if match:
            prefixes.add(url[: len(url) - len(name) + match.start() + 1])
        elif url.count("/") > 1 and not url.startswith("/model/"):
            prefixes.add(url[: url.index("/", 1) + 1])
    return sorted(prefixes)


def _site_urls(app: Sequence[str], model: Sequence[str]) -> list[str]:
    urls = ["/"]
    for rel in app:
        urls.append("/" + rel)
        if "/" not in rel and rel.endswith(".html") and rel != "index.html":
            urls.append("/" + rel.removesuffix(".html"))  # hosts' extension-less page URLs
    return urls + ["/model/" + rel for rel in model]


def _copy(src: Path, dst: Path, *, link: bool = False) -> None:
    """Copy readable by a web server running as another user; hard-link when allowed."""
    if link and src.stat().st_mode & 0o044 == 0o044:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another filesystem, or links not allowed: copy
    shutil.copyfile(src, dst)
    dst.chmod(0o644)


def export_site(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    static_dir: Path = STATIC_DIR,
    cors_origins: Sequence[str] = (),
    connect_src: Sequence[str] = (),
) -> Path:
    """Write the app, ``model_dir`` under ``model/`` and a ``_headers`` file to ``out_dir``.

    The site is assembled in a temporary directory beside ``out_dir`` and
    renamed into place, so a failure leaves nothing behind. ``out_dir`` must
    not exist or be empty. Model files are hard-linked where the filesystem
    allows, else copied. Returns ``out_dir``.
    """
    model, out = Path(model_dir), Path(out_dir)
    if not model.is_dir():
        raise SiteError(f"model directory {model} does not exist; build one with wsd-compile")
    model_files = _model_files(model)
    _check_export_dir(out)
    origins = [parse_origin(o) for o in cors_origins]
    site = render_site(static_dir, connect_src=connect_src)
    app = list(app_files(static_dir))
    clash = [rel for rel, _ in app if rel == "_headers" or rel.startswith("model/")]
    if clash:
        raise SiteError(f"the app has {clash[0]}, where the export puts the model or _headers")
    text = headers_file(
        site, _site_urls([rel for rel, _ in app], [r for r, _ in model_files]), cors_origins=origins
    )
    with atomic_directory(out, check=_check_export_dir) as tmp:
        for rel, src in app:
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel in site.files:
                dst.write_bytes(site.files[rel])
            else:
                _copy(src, dst)
        for rel, src in model_files:
            dst = tmp / "model" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            _copy(src, dst, link=True)
        (tmp / "_headers").write_text(text)
        for rel in [*site.files, "_headers"]:
            (tmp / rel).chmod(0o644)
        tmp.chmod(0o755)
    return out


def _check_export_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SiteError(f"{out} exists and is not empty: give a new or empty directory")
