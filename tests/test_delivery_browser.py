"""Delivery you can trust, in headless Chromium against the real server and the
real tiny-sd15 build: integrity of every byte, the persistent cache and offline
reload, resumed downloads, builds that do not belong together, and the page's
runtime failures (no WebGPU, limits too small, a lost device, files that cannot
be fetched). Faults are injected by Playwright intercepting the page's requests;
the server's own request log says what reached the network."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.server import Served, serving

if TYPE_CHECKING:
    from .conftest import PSNR, Reference

pytestmark = pytest.mark.browser

GENERATION = {"prompt": "a red bicycle in the snow", "seed": 21, "steps": 4, "scheduler": "euler"}
REFERENCE = {**GENERATION, "negative_prompt": ""}
TIMEOUT_MS = 600_000


class App:
    """One page of the app on a served build, with what it logged."""

    def __init__(self, page: Any, served: Served) -> None:
        self.page = page
        self.served = served
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    def model_requests(self) -> list[str]:
        return [path for _, path in self.served.requests if path.startswith("/model/")]

    def ready(self) -> dict[str, Any]:
        return dict(self.page.evaluate("window.wsd.ready.then(r => ({adapter: r.adapter}))"))

    def failure(self) -> str:
        """The message a failed load shows (and that ``ready`` rejects with)."""
        message = self.page.evaluate(
            "window.wsd.ready.then(() => null, (e) => e instanceof Error ? e.message : String(e))"
        )
        assert message is not None, "the load was expected to fail"
        status = self.page.text_content("#status")
        assert status is not None and message in status, (message, status)
        assert self.page.is_visible("#retry"), "a failed load must offer a retry"
        return str(message)

    def generate(self, options: dict[str, Any] = GENERATION) -> np.ndarray:
        result = self.page.evaluate("o => window.wsd.generate(o)", options)
        rgba = np.frombuffer(base64.b64decode(result["rgba"]), np.uint8)
        return rgba.reshape(result["height"], result["width"], 4)[..., :3]

    def report(self) -> dict[str, Any]:
        return dict(self.page.evaluate("window.wsd.loadReport()"))


@contextmanager
def app(
    browser: Any,
    build: Path,
    *,
    service_workers: str = "block",
    before: Callable[[Any], None] | None = None,
    query: str = "",
) -> Iterator[App]:
    """The app on ``build`` in a fresh browser context (its own empty caches);
    ``query``: the page URL's query string (e.g. ``kernel-path=fp32``)."""
    with serving(build) as served:
        context = browser.new_context(service_workers=service_workers)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            page = context.new_page()
            opened = App(page, served)
            if before is not None:
                before(page)
            page.goto(f"{served.url}?{query}" if query else served.url)
            yield opened
        finally:
            context.close()


def _flip_one_byte(route: Any) -> None:
    response = route.fetch()
    body = bytearray(response.body())
    body[len(body) // 3] ^= 0x01
    route.fulfill(response=response, body=bytes(body))


def test_a_flipped_byte_in_a_shard_is_named_and_nothing_of_it_reaches_the_gpu(
    browser: Any, tiny_sd15_build: Path
) -> None:
    shard = next(p.name for p in tiny_sd15_build.glob("shard-*.bin"))
    with app(
        browser, tiny_sd15_build, before=lambda p: p.route("**/shard-*.bin", _flip_one_byte)
    ) as a:
        message = a.failure()
        assert f"{shard} arrived corrupted" in message and "damaged in transit" in message, message
        report = a.report()
        assert report["uploadedFiles"] == []  # the model library ran, no weight reached the GPU
        stored = [e["file"] for e in a.page.evaluate("window.wsd.storage()")["entries"]]
        assert shard not in stored and "model.wasm" in stored  # the bad copy was never kept
        # Retry once the network behaves: the page recovers without a reload.
        a.page.unroute("**/shard-*.bin")
        a.page.click("#retry")
        a.ready()
        assert a.report()["uploadedFiles"] == [shard]
        assert a.page.is_hidden("#recovery")


def test_a_reload_with_the_network_cut_serves_everything_from_cache(
    browser: Any, tiny_sd15_build: Path
) -> None:
    with app(browser, tiny_sd15_build, service_workers="allow") as a:
        a.ready()
        first = a.generate()
        a.page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        assert a.report()["stats"]["requests"] >= 4

        # Online reload: only the manifest is asked for (revalidated), no weight request.
        seen = len(a.served.requests)
        a.page.reload()
        a.ready()
        assert a.report()["stats"]["requests"] == 0
        assert [p for _, p in a.served.requests[seen:] if p.startswith("/model/")] == [
            "/model/manifest.json"
        ]

        # Offline reload: the page, its scripts, the manifest and the model all from the
        # browser; not one request reaches the server.
        seen = len(a.served.requests)
        a.page.context.set_offline(True)
        a.page.reload()
        a.ready()
        report = a.report()
        assert report["offline"] is True and report["stats"]["requests"] == 0
        assert a.page.text_content("#status") == "Ready (offline)."
        assert "The server cannot be reached" in (a.page.text_content("#warning") or "")
        again = a.generate()
        # (The service worker's own update check of /sw.js may land from the online load.)
        assert [p for _, p in a.served.requests[seen:] if p != "/sw.js"] == []
        np.testing.assert_array_equal(again, first)


def test_a_connection_dropped_mid_download_is_resumed_and_the_image_matches_diffusers(
    browser: Any, tiny_sd15_build: Path, diffusers_reference: Reference, psnr: PSNR
) -> None:
    ranges: list[str | None] = []

    def drop_first(route: Any) -> None:
        ranges.append(route.request.headers.get("range"))
        if len(ranges) > 1:
            route.continue_()
            return
        response = route.fetch()
        body = response.body()
        # Headers promise the whole file; the connection ends halfway.
        route.fulfill(
            status=200,
            headers={**response.headers, "content-length": str(len(body))},
            body=body[: len(body) // 2],
        )

    with app(browser, tiny_sd15_build, before=lambda p: p.route("**/shard-*.bin", drop_first)) as a:
        a.ready()
        size = next(tiny_sd15_build.glob("shard-*.bin")).stat().st_size
        assert ranges == [None, f"bytes={size // 2}-"]  # the retry resumed where it stopped
        assert a.report()["stats"]["retries"] == 1
        image = a.generate()
    expected, _ = diffusers_reference(REFERENCE)
    assert psnr(image, expected) >= 40


def test_a_stale_manifest_against_a_new_wasm_is_rejected(
    browser: Any, tiny_sd15_build: Path, tiny_sdxl_build: Path
) -> None:
    manifest = json.loads((tiny_sd15_build / "manifest.json").read_text())
    other = json.loads((tiny_sdxl_build / "manifest.json").read_text())
    newer_wasm = (tiny_sdxl_build / "model.wasm").read_bytes()

    def serve_newer(route: Any) -> None:
        route.fulfill(status=200, content_type="application/wasm", body=newer_wasm)

    with app(browser, tiny_sd15_build, before=lambda p: p.route("**/model.wasm", serve_newer)) as a:
        message = a.failure()
        assert (
            f"manifest.json is from build {manifest['build_id']} but model.wasm is from build "
            f"{other['build_id']}"
        ) in message
        assert not any(p.endswith(".bin") for p in a.model_requests())


def test_an_fp16_build_fetches_only_the_library_of_the_path_the_adapter_runs(
    browser: Any, tiny_sd15_fp16_build: Path
) -> None:
    """SwiftShader lacks shader-f16: the page picks the fp32 path, says why, and
    never downloads the fp16 library; forcing the fp16 path is one clear line."""
    with app(browser, tiny_sd15_fp16_build) as a:
        ready = a.page.evaluate("window.wsd.ready.then(r => r.kernelPath)")
        assert ready == "fp32"
        requests = a.model_requests()
        assert "/model/model-fp32.wasm" in requests
        assert "/model/model.wasm" not in requests
        info = a.page.text_content("#model-info") or ""
        why = "needs the WebGPU feature shader-f16"
        assert f"kernel path fp32 (passed over shader-f16: {why}" in info

    with app(browser, tiny_sd15_fp16_build, query="kernel-path=shader-f16") as a:
        assert "the kernel path shader-f16 cannot run on this GPU" in a.failure()
        assert not any(p.endswith((".bin", ".wasm")) for p in a.model_requests())


def test_a_page_without_webgpu_says_so(browser: Any, tiny_sd15_build: Path) -> None:
    def no_webgpu(page: Any) -> None:
        page.add_init_script(
            "Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined})"
        )

    with app(browser, tiny_sd15_build, before=no_webgpu) as a:
        assert "This browser has no WebGPU" in a.failure()
        assert a.model_requests() == []


def test_an_adapter_with_too_small_limits_is_told_which_limit_before_any_weight_downloads(
    browser: Any, tiny_sd15_build: Path
) -> None:
    manifest = json.loads((tiny_sd15_build / "manifest.json").read_text())
    manifest["limits"]["max_buffer_bytes"] = 64 * 2**30  # more than any adapter binds
    for path in manifest["kernel_paths"]:
        path["max_buffer_bytes"] = 64 * 2**30

    def huge(route: Any) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(manifest))

    with app(browser, tiny_sd15_build, before=lambda p: p.route("**/manifest.json", huge)) as a:
        message = a.failure()
        assert "maxStorageBufferBindingSize >= 68719476736 bytes (65536 MiB)" in message, message
        assert not any(p.endswith((".bin", ".wasm")) for p in a.model_requests())


def test_a_lost_gpu_device_is_reported_and_re_initialised_from_the_cache(
    browser: Any, tiny_sd15_build: Path
) -> None:
    with app(browser, tiny_sd15_build) as a:
        a.ready()
        message = a.page.evaluate(
            """async () => {
                const run = window.wsd.generate({prompt: "x", steps: 30});
                await new Promise((resolve) => setTimeout(resolve, 1500));
                (await window.wsd.gpuDevice()).destroy();
                return run.then(() => null, (e) => e.message);
            }"""
        )
        assert message is not None and "the GPU device was lost" in message
        status = a.page.text_content("#status") or ""
        assert "Re-initialise to continue" in status and a.page.is_visible("#retry")
        assert a.page.text_content("#retry") == "Re-initialise"
        assert a.page.is_disabled("#generate")
        a.page.click("#retry")
        a.ready()
        assert a.report()["stats"]["requests"] == 0  # everything came from the cache
        assert a.generate({**GENERATION, "steps": 2}).shape == (64, 64, 3)


@pytest.mark.parametrize("status", [404, 503])
def test_a_tokenizer_that_cannot_be_fetched_fails_before_the_weights_and_retry_recovers(
    browser: Any, tiny_sd15_build: Path, status: int
) -> None:
    def refuse(route: Any) -> None:
        route.fulfill(status=status, body="")

    with app(browser, tiny_sd15_build, before=lambda p: p.route("**/tokenizer.json", refuse)) as a:
        a.page.evaluate("window.wsd.ready.catch(() => null)")
        message = a.failure()
        assert "tokenizer.json" in message and f"HTTP {status}" in message, message
        assert not any(p.endswith((".bin", ".wasm")) for p in a.model_requests())
        a.page.unroute("**/tokenizer.json")
        a.page.click("#retry")
        a.ready()


def test_a_manifest_that_cannot_be_fetched_is_explained_and_retry_recovers(
    browser: Any, tiny_sd15_build: Path
) -> None:
    def down(route: Any) -> None:
        route.fulfill(status=502, body="bad gateway")

    with app(browser, tiny_sd15_build, before=lambda p: p.route("**/manifest.json", down)) as a:
        message = a.failure()
        assert "manifest.json (HTTP 502)" in message and "no copy of it is stored" in message
        a.page.unroute("**/manifest.json")
        a.page.click("#retry")
        a.ready()
