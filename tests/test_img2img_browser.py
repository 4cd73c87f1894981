"""Image to image in the page (headless Chromium, WebGPU on SwiftShader) on the
compiled tiny SD 1.5 preset, against diffusers' StableDiffusionImg2ImgPipeline:
through automation (``wsd-web render --image``, the picture file decoded and
fitted by the browser) and through the page's own controls (a file chosen in the
start image panel, the form's Generate button). SDXL's image to image runs the
same modules in Node (test_img2img_dawn.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.png import encode_png
from wsd_web.render import Rendering, render_many

from .editing import NEGATIVE, PROMPT, SEED, STEPS, Reference, diffusers_reference, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

STRENGTHS = (0.3, 0.8)


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """The start picture, and a PNG file of it at the build's size."""
    image = start_image(64)
    rgba = np.concatenate([image, np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    path = tmp_path_factory.mktemp("picture") / "start.png"
    path.write_bytes(encode_png(rgba.tobytes(), 64, 64))
    return image, path


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Reference:
    directory = tmp_path_factory.mktemp("ref")
    return diffusers_reference("tiny-sd15", directory, scheduler_classes, "img2img")


@pytest.fixture(scope="module")
def renderings(tiny_sd15_build: Path, picture: tuple[np.ndarray, Path]) -> list[Rendering]:
    runs = [
        {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "seed": SEED,
            "steps": STEPS,
            "scheduler": "euler",
            "image": picture[1],
            "strength": strength,
            "return_latents": True,
        }
        for strength in STRENGTHS
    ]
    return render_many(tiny_sd15_build, runs)


def rgb(rendering: Rendering) -> np.ndarray:
    pixels = np.frombuffer(rendering.rgba, np.uint8)
    return pixels.reshape(rendering.height, rendering.width, 4)[..., :3]


def test_render_image_matches_diffusers(
    renderings: list[Rendering],
    reference: Reference,
    picture: tuple[np.ndarray, Path],
    psnr: PSNR,
) -> None:
    for strength, rendering in zip(STRENGTHS, renderings, strict=True):
        expected, latents = reference("euler", image=picture[0], strength=strength)
        assert psnr(rgb(rendering), expected) >= 40, strength
        got = np.asarray(rendering.latents, np.float32).reshape(latents.shape)
        assert np.abs(got - latents).max() <= 1e-3 * float(np.abs(latents).max())
    assert psnr(rgb(renderings[0]), rgb(renderings[1])) < 35


def _canvas_rgb(page: Any) -> np.ndarray:
    data = page.evaluate(
        """() => {
            const c = document.getElementById("canvas");
            return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
        }"""
    )
    return np.asarray(data, np.uint8).reshape(64, 64, 4)[..., :3]


def _drop(page: Any, name: str, data: list[int], mime: str) -> None:
    page.evaluate(
        """([name, data, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(data)], name, {type: mime}));
            const panel = document.getElementById("start-image");
            panel.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [name, data, mime],
    )


def _generate(page: Any) -> None:
    """Click Generate and wait until the page says it is done."""
    page.evaluate("document.getElementById('status').textContent = ''")
    page.click("#generate")
    page.evaluate(
        """async () => {
            const status = document.getElementById("status");
            while (!status.textContent.startsWith("Done")) {
                if (status.classList.contains("error")) throw new Error(status.textContent);
                await new Promise((r) => setTimeout(r, 100));
            }
        }"""
    )


def test_the_page_starts_from_a_chosen_file(
    tiny_sd15_build: Path,
    renderings: list[Rendering],
    picture: tuple[np.ndarray, Path],
    psnr: PSNR,
) -> None:
    from wsd_web.headless import headless_page

    with headless_page(tiny_sd15_build, "index.html") as (page, _):
        page.set_default_timeout(600_000)
        page.evaluate("window.wsd.ready")
        assert page.is_visible("#start-image")
        page.click("#start-image summary")
        # Not a picture, dropped on the panel: one line in the panel, no image set.
        _drop(page, "notes.txt", list(b"not a picture"), "text/plain")
        page.wait_for_selector("#start-error:not(:empty)")
        error = page.text_content("#start-error") or ""
        assert error.startswith("the start image could not be decoded (text/plain, 13 bytes)")
        assert page.is_hidden("#start-preview")
        # The picture, chosen in the file input.
        page.set_input_files("#start-file", str(picture[1]))
        page.wait_for_selector("#start-preview", state="visible")
        assert page.text_content("#start-error") == ""
        for field, value in (
            ("#prompt", PROMPT),
            ("#negative", NEGATIVE),
            ("#seed", str(SEED)),
            ("#steps", str(STEPS)),
            ("#strength", "0.8"),
        ):
            page.fill(field, value)
        page.select_option("#scheduler", "euler")
        _generate(page)
        # The same image automation made from the same file and settings.
        assert psnr(_canvas_rgb(page), rgb(renderings[1])) >= 60
        # Removed: the next generation is text to image again.
        page.click("#start-clear")
        assert page.is_hidden("#start-preview")
        _generate(page)
        assert psnr(_canvas_rgb(page), rgb(renderings[1])) < 35


def test_render_cli_refuses_a_bad_picture_or_strength(
    tiny_sd15_build: Path, picture: tuple[np.ndarray, Path], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    out = tmp_path / "out.png"
    command = [sys.executable, "-m", "wsd_web", "render", str(tiny_sd15_build), "--prompt", "x"]
    for extra, message in (
        (["--image", str(notes)], f"{notes} is not a PNG, JPEG, WebP, GIF or BMP image"),
        (["--strength", "0.5"], "a strength needs a start image: give the image too"),
        (
            ["--image", str(picture[1]), "--strength", "1.5"],
            "strength 1.5 is out of range; use 0 < strength <= 1",
        ),
    ):
        result = subprocess.run(
            [*command, *extra, "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode == 1
        assert result.stderr.strip() == f"wsd-web: {message}"
        assert not out.exists()
