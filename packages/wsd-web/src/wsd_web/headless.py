"""Driving the app in headless Chromium with WebGPU (SwiftShader when there is no GPU)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .server import STATIC_DIR, serving

#: WebGPU on the CPU through SwiftShader, and no background traffic.
CHROMIUM_ARGS = (
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


class HeadlessError(Exception):
    """The headless browser could not be started or the page failed."""


def chromium_path() -> str:
    """``$WSD_CHROMIUM``, else Chromium on PATH; an error with the fix if neither exists."""
    candidate = os.environ.get("WSD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(candidate).is_file():
        raise HeadlessError(
            "Chromium was not found: install it (Debian: `apt-get install chromium`) "
            "or set WSD_CHROMIUM to a Chromium/Chrome executable"
        )
    return candidate


@contextmanager
def headless_page(model_dir: str | Path, page_path: str) -> Iterator[tuple[Any, list[str]]]:
    """Serve the app with ``model_dir`` and open ``page_path`` in headless Chromium.

    Yields the Playwright page and a list that collects its console and page
    errors, so a failure can say what the browser saw.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise HeadlessError(
            "headless runs need Playwright: pip install 'wsd-web[headless]'"
        ) from None
    with serving(model_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            with _js_coverage(page, base):
                page.goto(base + page_path)
                yield page, errors
        finally:
            browser.close()


@contextmanager
def _js_coverage(page: Any, base: str) -> Iterator[None]:
    """Record the app's JS coverage when ``NODE_V8_COVERAGE`` names a directory.

    Chromium's precise coverage has the same format as Node's, so the test
    command's c8 report counts what the browser ran beside what Node ran;
    script URLs are mapped back to the app's files on disk.
    """
    out = os.environ.get("NODE_V8_COVERAGE")
    if not out:
        yield
        return
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.startPreciseCoverage", {"callCount": True, "detailed": True})
    try:
        yield
    finally:
        scripts = cdp.send("Profiler.takePreciseCoverage")["result"]
        app = [
            {**script, "url": (STATIC_DIR / script["url"][len(base) :]).as_uri()}
            for script in scripts
            if script["url"].startswith(base) and script["url"].endswith(".js")
        ]
        Path(out).mkdir(parents=True, exist_ok=True)
        target = Path(out) / f"coverage-chromium-{os.getpid()}-{uuid.uuid4().hex}.json"
        target.write_text(json.dumps({"result": app}))


def run_check(model_dir: str | Path, *, timeout_s: float = 300) -> dict[str, Any]:
    """Run a runtime-check build in headless Chromium and return the page's result."""
    with headless_page(model_dir, "check.html") as (page, errors):
        page.set_default_timeout(timeout_s * 1000)
        page.wait_for_function("() => window.wsdCheck !== undefined")
        result: dict[str, Any] = page.evaluate("window.wsdCheck")
        if "error" in result:
            seen = "; ".join(errors)
            raise HeadlessError(
                f"the check page failed: {result['error']}" + (f" ({seen})" if seen else "")
            )
        return result
