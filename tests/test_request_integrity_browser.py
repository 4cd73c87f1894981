"""Every request the page makes is pinned: headless Chromium loads the app on the real
tiny-sd15 build (service worker allowed) and generates one image, and every request
it made (the page's, its workers', the service worker's, and every path the server
saw) must be the page itself, a file the served HTML lists with an integrity hash
(``<script>``/``<link>`` attributes, the import map's ``integrity`` table) or a file
the model's manifest lists with its sha384 (the manifest is their root). Every
script and wasm response must hash to what is listed for it.

One file is neither, and cannot be: ``sw.js``. Browsers take no integrity for a
service worker script, and the page cannot list its hash (its precache list holds
the page's own hash). It is held instead to the service worker the server renders,
and every file it precaches to the hash the HTML lists."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from wsd_web.server import serving
from wsd_web.site import render_site

pytestmark = pytest.mark.browser

GENERATION = {"prompt": "a red bicycle in the snow", "seed": 3, "steps": 2, "scheduler": "euler"}
TIMEOUT_MS = 600_000


class _Listing(HTMLParser):
    """What a page pins: ``{absolute URL: integrity}`` from its tags and its import map."""

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.pinned: dict[str, str] = {}
        self._importmap: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and (a.get("type") or "").lower() == "importmap":
            self._importmap = []
        ref = a.get("src") if tag == "script" else a.get("href") if tag == "link" else None
        if ref and a.get("integrity"):
            self.pinned[urljoin(self.page_url, ref)] = str(a["integrity"])

    def handle_data(self, data: str) -> None:
        if self._importmap is not None:
            self._importmap.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._importmap is not None:
            table = json.loads("".join(self._importmap)).get("integrity", {})
            self.pinned.update({urljoin(self.page_url, k): v for k, v in table.items()})
            self._importmap = None


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _plain(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


@dataclass
class Audit:
    """The page's requests held to its listings; ``problems`` is empty when all is pinned."""

    base: str
    html: bytes
    manifest: dict[str, Any]
    pinned: dict[str, str] = field(init=False)
    manifest_url: str = field(init=False)
    checked: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        listing = _Listing(self.base)
        listing.feed(self.html.decode("utf-8"))
        listing.close()
        self.pinned = dict(listing.pinned)
        self.manifest_url = urljoin(self.base, "model/manifest.json")
        for path, entry in self.manifest["files"].items():
            self.pinned[urljoin(self.base, f"model/{path}")] = entry["integrity"]

    def listed(self, url: str) -> str | None:
        """The integrity the page or the manifest gives ``url``; "" for the page and manifest."""
        plain = _plain(url)
        if plain in (self.base, urljoin(self.base, "index.html"), self.manifest_url):
            return ""
        return self.pinned.get(plain)

    def body(self, request: Any) -> bytes | None:
        """What the browser got for ``request`` (a full 200 response), else None."""
        response = request.response()
        if response is None or response.status != 200:
            return None
        try:
            return bytes(response.body())
        except Exception:  # the service worker's own fetches: the body stays in its realm
            with urllib.request.urlopen(_plain(request.url)) as r:  # our own server
                return bytes(r.read())

    def request(self, request: Any) -> None:
        url = request.url
        kind = request.resource_type
        scheme = urlsplit(url).scheme
        if scheme == "data":
            return  # no request: the bytes are in the URL, made by pinned code
        if scheme not in ("http", "https"):
            self.problems.append(f"{kind} {url}: a scheme the page has no business with")
            return
        if _plain(url) == urljoin(self.base, "sw.js"):
            return  # `service_worker` below
        listed = self.listed(url)
        if listed is None:
            self.problems.append(f"{kind} {url} is listed neither in the page nor in the manifest")
            return
        is_code = kind == "script" or urlsplit(url).path.endswith((".js", ".mjs", ".wasm"))
        body = self.body(request)
        if body is None or not listed:
            if is_code and body is None and request.response() is not None:
                self.problems.append(f"{kind} {url}: no full response to check the hash of")
            return
        if sri(body) != listed:
            self.problems.append(f"{kind} {url} hashes to {sri(body)}, listed as {listed}")
        else:
            self.checked[_plain(url)] = listed

    def server_paths(self, paths: list[str]) -> None:
        """Every path that reached the server: listed (or the page, or sw.js)."""
        for path in paths:
            url = urljoin(self.base, path.lstrip("/"))
            if _plain(url) != urljoin(self.base, "sw.js") and self.listed(url) is None:
                self.problems.append(f"the server was asked for {path}, which nothing lists")

    def service_worker(self, served: bytes) -> None:
        """sw.js as the server renders it, precaching only what the page pins, as pinned."""
        expected = render_site().files["sw.js"]
        if served != expected:
            self.problems.append("sw.js as served is not the service worker wsd-web renders")
        text = served.decode("utf-8")
        start = text.index("const PRECACHE = ") + len("const PRECACHE = ")
        precache = json.loads(text[start : text.index("];", start) + 1])
        assert precache, "the service worker precaches nothing"
        for entry in precache:
            url = urljoin(self.base, entry["url"])
            if url in (self.base, urljoin(self.base, "index.html")):
                if entry["integrity"] != sri(self.html):
                    self.problems.append(f"sw.js precaches {entry['url']} with another hash")
            elif self.pinned.get(url) != entry["integrity"]:
                self.problems.append(f"sw.js precaches {entry['url']}, which the page does not pin")


def _run(browser: Any, build: Path, before: Any = None) -> tuple[Audit, list[Any], list[str]]:
    """Load the app on ``build`` (and generate once unless ``before`` breaks it)."""
    with serving(build) as served:
        context = browser.new_context(service_workers="allow")
        context.set_default_timeout(TIMEOUT_MS)
        seen: list[Any] = []
        context.on("request", lambda r: seen.append(r))  # pages, workers, service workers
        try:
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            if before is not None:
                before(page)
            navigation = page.goto(served.url)
            assert navigation is not None and navigation.ok
            audit = Audit(
                served.url, navigation.body(), json.loads((build / "manifest.json").read_text())
            )
            if before is None:
                page.evaluate("window.wsd.ready.then(() => true)")
                result = page.evaluate("o => window.wsd.generate(o)", GENERATION)
                assert result["width"] > 0, console
                page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            else:
                page.wait_for_load_state("load")
                page.wait_for_timeout(1000)
            with urllib.request.urlopen(urljoin(served.url, "sw.js")) as r:
                audit.service_worker(bytes(r.read()))
            for request in seen:
                audit.request(request)
            audit.server_paths([path for _, path in served.requests])
            return audit, seen, console
        finally:
            context.close()


def test_every_request_of_a_load_and_a_generation_is_pinned(
    browser: Any, tiny_sd15_build: Path
) -> None:
    audit, seen, _ = _run(browser, tiny_sd15_build)
    assert audit.problems == [], "requests the page does not pin:\n" + "\n".join(audit.problems)
    urls = {_plain(r.url) for r in seen}
    base = audit.base
    # What was seen: the page's scripts, its modules, the model library and weights, and the
    # service worker (its requests are in `seen` too).
    for rel in ["vendor/tvmjs/index.js", "vendor/tokenizers/index.js", "js/app.js", "sw.js"]:
        assert urljoin(base, rel) in urls, rel
    assert any(r.service_worker is not None for r in seen), "no request of the service worker seen"
    for rel in ["model/model.wasm", "model/manifest.json", "model/tensor-cache.json"]:
        assert urljoin(base, rel) in urls, rel
    # Every script and the wasm were checked against their listed hash, byte for byte.
    code = {
        u for u in urls if urlsplit(u).path.endswith((".js", ".wasm")) and not u.endswith("/sw.js")
    }
    assert code and code <= set(audit.checked), sorted(code - set(audit.checked))


def test_an_unlisted_script_and_a_tampered_one_are_named(
    browser: Any, tiny_sd15_build: Path
) -> None:
    def tamper(page: Any) -> None:
        def add_a_comment(route: Any) -> None:
            response = route.fetch()
            route.fulfill(response=response, body=response.body() + b"\n// tampered\n")

        page.route("**/vendor/tokenizers/index.js", add_a_comment)
        page.add_init_script(
            "addEventListener('DOMContentLoaded', () => document.head.append("
            "Object.assign(document.createElement('script'), {src: 'vendor/tvmjs/NOTICE'})))"
        )

    audit, _, _ = _run(browser, tiny_sd15_build, before=tamper)
    base = audit.base
    notice = urljoin(base, "vendor/tvmjs/NOTICE")
    tokenizers = urljoin(base, "vendor/tokenizers/index.js")
    assert f"script {notice} is listed neither in the page nor in the manifest" in audit.problems
    assert "the server was asked for /vendor/tvmjs/NOTICE, which nothing lists" in audit.problems
    assert any(p.startswith(f"script {tokenizers} hashes to ") for p in audit.problems), (
        audit.problems
    )
    assert len(audit.problems) == 3, audit.problems
