"""LoRA in the page (headless Chromium, WebGPU on SwiftShader) on the compiled
tiny SD 1.5 preset, against diffusers' ``load_lora_weights`` + ``fuse_lora``:
through the page's LoRA panel (a file chosen in its input, its scale set,
Generate, the PNG's parameters read back; a file that does not fit refused in
the panel; the LoRA removed) and through ``wsd-web render --lora FILE:SCALE``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.png import png_text

from .editing import NEGATIVE, PROMPT, SEED, canvas_rgb, click_generate
from .lora_files import LORA_STEPS, fused_reference, make_lora

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def lora_setup(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> dict[str, Any]:
    """A PEFT LoRA for tiny-sd15, one for tiny-sdxl (another model), and the references."""
    from wsd_capture import write_preset

    directory = tmp_path_factory.mktemp("lora-page")
    sd15 = write_preset("tiny-sd15", directory / "tiny-sd15")
    xl = write_preset("tiny-sdxl", directory / "tiny-sdxl")
    return {
        "lora": make_lora(sd15, directory / "style", xl=False, seed=3),
        "other": make_lora(xl, directory / "xl", xl=True, seed=3),
        "reference": fused_reference(sd15, scheduler_classes, xl=False, steps=LORA_STEPS),
    }


def _generate(page: Any) -> dict[str, Any]:
    """Click Generate, wait until done; the image."""
    click_generate(page)
    return {"image": canvas_rgb(page)}


@pytest.fixture(scope="module")
def page_run(tiny_sd15_build: Path, lora_setup: dict[str, Any]) -> dict[str, Any]:
    """One page session: the LoRA chosen in the panel at scale 0.5, Generate; a LoRA
    for another model chosen (refused); the LoRA removed, Generate."""
    from wsd_web.headless import headless_page

    got: dict[str, Any] = {}
    with headless_page(tiny_sd15_build, "index.html") as (page, _):
        page.set_default_timeout(600_000)
        page.evaluate("window.wsd.ready")
        page.fill("#prompt", PROMPT)
        page.fill("#negative", NEGATIVE)
        page.fill("#seed", str(SEED))
        page.fill("#steps", str(LORA_STEPS))
        page.select_option("#scheduler", "euler")
        page.fill("#preview", "0")
        page.evaluate("document.getElementById('lora-panel').open = true")
        page.set_input_files("#lora-file", str(lora_setup["lora"]))
        page.wait_for_selector("#lora-list li")
        page.fill("#lora-list li input", "0.5")
        got["merged"] = _generate(page)
        got["png_parameters"] = png_text(_download(page))
        page.set_input_files("#lora-file", str(lora_setup["other"]))
        page.evaluate(
            """async () => {
                const error = document.getElementById("lora-error");
                while (!error.textContent) await new Promise((r) => setTimeout(r, 50));
            }"""
        )
        got["refusal"] = page.text_content("#lora-error")
        got["listed"] = page.eval_on_selector_all("#lora-list li", "rows => rows.length")
        page.click("#lora-list li button")
        got["removed"] = _generate(page)
        got["removed_parameters"] = png_text(_download(page))
    return got


def _download(page: Any) -> bytes:
    """The PNG the Download button saves."""
    with page.expect_download() as info:
        page.click("#download")
    return Path(info.value.path()).read_bytes()


def test_the_panel_merges_a_lora_as_diffusers_fuses_it(
    page_run: dict[str, Any], lora_setup: dict[str, Any], psnr: PSNR
) -> None:
    expected, _ = lora_setup["reference"]("euler", [(lora_setup["lora"], 0.5)])
    assert psnr(page_run["merged"]["image"], expected) >= 40
    base, _ = lora_setup["reference"]("euler", [])
    assert psnr(page_run["merged"]["image"], base) < 35
    text = page_run["png_parameters"]["parameters"]
    assert 'LoRAs: "lora.safetensors:0.5"' in text, text


def test_a_lora_for_another_model_is_refused_in_the_panel(page_run: dict[str, Any]) -> None:
    refusal = page_run["refusal"]
    assert refusal.startswith("LoRA lora.safetensors: "), refusal
    assert "not weights of this sd15 build" in refusal and "a LoRA for another model?" in refusal
    assert "\n" not in refusal
    # The list (the LoRA chosen before) is as it was.
    assert page_run["listed"] == 1


def test_removing_the_lora_gives_the_base_image(
    page_run: dict[str, Any], lora_setup: dict[str, Any], psnr: PSNR
) -> None:
    base, _ = lora_setup["reference"]("euler", [])
    assert psnr(page_run["removed"]["image"], base) >= 40
    assert "LoRAs" not in page_run["removed_parameters"]["parameters"]


def _render(build: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsd_web", "render", str(build), "--prompt", PROMPT,
         "--negative-prompt", NEGATIVE, "--seed", str(SEED), "--steps", str(LORA_STEPS),
         "--scheduler", "euler", "--out", str(out), *extra],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip


def test_render_lora_matches_diffusers(
    tiny_sd15_build: Path, lora_setup: dict[str, Any], tmp_path: Path, psnr: PSNR
) -> None:
    out = tmp_path / "lora.png"
    done = _render(tiny_sd15_build, out, "--lora", f"{lora_setup['lora']}:0.5")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert 'LoRAs: "lora.safetensors:0.5"' in record["parameters"]
    from PIL import Image

    got = np.asarray(Image.open(out).convert("RGB"))
    expected, _ = lora_setup["reference"]("euler", [(lora_setup["lora"], 0.5)])
    assert psnr(got, expected) >= 40


def test_render_refuses_a_missing_lora_before_the_browser(
    tiny_sd15_build: Path, tmp_path: Path
) -> None:
    done = _render(
        tiny_sd15_build, tmp_path / "x.png", "--lora", str(tmp_path / "none.safetensors:1")
    )
    assert done.returncode == 1
    assert done.stderr.startswith("wsd-web: cannot read the LoRA ")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
