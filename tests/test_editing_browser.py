"""Image to image and inpainting in the page (headless Chromium, WebGPU on
SwiftShader) on the compiled tiny SD 1.5 preset, against diffusers'
StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline: through
automation (``window.wsd.generate`` with a picture file, as ``wsd-web render
--image`` sends it, decoded and fitted by the browser) and through the page's
own controls (a file chosen in the start image panel, a mask painted with the
mouse or chosen as a file, the form's Generate button). The other presets'
editing runs the same modules in Node (test_editing_dawn.py)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.png import encode_png, png_text

from .editing import (
    NEGATIVE,
    PROMPT,
    SEED,
    STEPS,
    Reference,
    canvas_rgb,
    click_generate,
    diffusers_reference,
    start_image,
)

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


def _drop(page: Any, name: str, data: bytes, mime: str) -> None:
    page.evaluate(
        """([name, data, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(data)], name, {type: mime}));
            const panel = document.getElementById("start-image");
            panel.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        [name, list(data), mime],
    )


@pytest.fixture(scope="module")
def page_run(
    tiny_sd15_build: Path, picture: tuple[np.ndarray, Path], mask_file: Path
) -> dict[str, Any]:
    """One page session: automation (``window.wsd.generate`` with the picture file,
    as ``wsd-web render --image`` sends it) at both strengths, then the page's
    own controls: a file that is not a picture dropped on the panel, the picture
    chosen in the file input, Generate; a mask painted with the mouse, Generate;
    a mask file, Generate; the picture removed, Generate again."""
    from wsd_web.headless import headless_page

    got: dict[str, Any] = {}
    with headless_page(tiny_sd15_build, "index.html") as (page, _):
        page.set_default_timeout(600_000)
        page.evaluate("window.wsd.ready")
        file = {"base64": base64.b64encode(picture[1].read_bytes()).decode(), "type": "image/png"}
        for strength in STRENGTHS:
            options = {
                "prompt": PROMPT,
                "negativePrompt": NEGATIVE,
                "seed": str(SEED),
                "steps": STEPS,
                "scheduler": "euler",
                "task": "image-to-image",
                "imageFile": file,
                "strength": strength,
                "returnLatents": True,
            }
            result = page.evaluate("o => window.wsd.generate(o)", options)
            png = base64.b64decode(result["png"].removeprefix("data:image/png;base64,"))
            got[f"parameters {strength}"] = png_text(png).get("parameters")
            rgba = np.frombuffer(base64.b64decode(result["rgba"]), np.uint8)
            got[str(strength)] = (rgba.reshape(64, 64, 4)[..., :3], result["latents"])
        got["panel shown"] = page.is_visible("#start-image")
        page.click("#start-image summary")
        _drop(page, "notes.txt", b"not a picture", "text/plain")
        page.wait_for_selector("#start-error:not(:empty)")
        got["drop error"] = page.text_content("#start-error")
        got["preview after error"] = page.is_visible("#start-preview")
        page.set_input_files("#start-file", str(picture[1]))
        page.wait_for_selector("#start-preview", state="visible")
        got["error after picture"] = page.text_content("#start-error")
        for field, value in (
            ("#prompt", PROMPT),
            ("#negative", NEGATIVE),
            ("#seed", str(SEED)),
            ("#steps", str(STEPS)),
            ("#strength", "0.8"),
        ):
            page.fill(field, value)
        page.select_option("#scheduler", "euler")
        click_generate(page)
        got["controls"] = canvas_rgb(page)
        got.update(_inpaint_with_the_controls(page, mask_file))
        page.click("#start-clear")
        got["preview after remove"] = page.is_visible("#start-preview")
        click_generate(page)
        got["text to image"] = canvas_rgb(page)
    return got


@pytest.fixture(scope="module")
def mask_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mask PNG: white (repaint) in the left half."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:, :32, :3] = 255
    path = tmp_path_factory.mktemp("mask") / "mask.png"
    path.write_bytes(encode_png(rgba.tobytes(), 64, 64))
    return path


def _edit_inputs(page: Any) -> dict[str, np.ndarray]:
    """The picture and mask the page holds, as 8-bit RGB and a 0/255 grayscale mask."""
    inputs = page.evaluate("window.wsd.editInputs()")
    rgba = {
        k: np.frombuffer(base64.b64decode(v), np.uint8).reshape(64, 64, 4)
        for k, v in inputs.items()
    }
    return {"image": rgba["image"][..., :3], "mask": rgba["mask"][..., 0]}


def _inpaint_with_the_controls(page: Any, mask_file: Path) -> dict[str, Any]:
    """Paint a stroke across the picture with the mouse and generate; then a mask file."""
    got: dict[str, Any] = {"mask panel shown": page.is_visible("#mask-canvas")}
    page.fill("#brush-size", "12")
    box = page.locator("#mask-canvas").bounding_box()
    y = box["y"] + box["height"] * 0.75
    page.mouse.move(box["x"] + box["width"] * 0.2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=12)
    page.mouse.up()
    click_generate(page)
    got["painted"] = (_edit_inputs(page), canvas_rgb(page))
    page.set_input_files("#mask-file", str(mask_file))
    page.evaluate(
        """async () => {
            // The file's mask is white at the top-left corner; the stroke is not.
            const corner = () => atob(window.wsd.editInputs().mask ?? "").charCodeAt(0);
            while (corner() !== 255) {
                await new Promise((r) => setTimeout(r, 50));
            }
        }"""
    )
    click_generate(page)
    got["mask file"] = (_edit_inputs(page), canvas_rgb(page))
    page.click("#mask-clear")
    got["mask after clear"] = page.evaluate("window.wsd.editInputs().mask")
    return got


def test_automation_matches_diffusers(
    page_run: dict[str, Any], reference: Reference, picture: tuple[np.ndarray, Path], psnr: PSNR
) -> None:
    for strength in STRENGTHS:
        expected, latents = reference("euler", image=picture[0], strength=strength)
        pixels, got_latents = page_run[str(strength)]
        assert psnr(pixels, expected) >= 40, strength
        got = np.asarray(got_latents, np.float32).reshape(latents.shape)
        assert np.abs(got - latents).max() <= 1e-3 * float(np.abs(latents).max())
    assert psnr(page_run["0.3"][0], page_run["0.8"][0]) < 35
    # The PNG carries the generation's parameters (iTXt "parameters", as other SD tools write them).
    parameters = page_run["parameters 0.3"]
    assert parameters.startswith(f"{PROMPT}\nNegative prompt: {NEGATIVE}\nSteps: {STEPS}, ")
    for field in (f"Seed: {SEED}", "Sampler: euler", "CFG scale: 7.5", "Size: 64x64"):
        assert field in parameters
    assert parameters.endswith("Task: image-to-image, Denoising strength: 0.3")


def test_the_page_starts_from_a_chosen_file(page_run: dict[str, Any], psnr: PSNR) -> None:
    assert page_run["panel shown"]
    assert page_run["drop error"].startswith(
        "the start image could not be decoded (text/plain, 13 bytes)"
    )
    assert not page_run["preview after error"]
    assert page_run["error after picture"] == ""
    # The same image automation made from the same file and settings.
    assert psnr(page_run["controls"], page_run["0.8"][0]) >= 60
    # Removed: the next generation is text to image again.
    assert not page_run["preview after remove"]
    assert psnr(page_run["text to image"], page_run["0.8"][0]) < 35


def test_the_page_inpaints_with_a_painted_mask_and_a_mask_file(
    page_run: dict[str, Any],
    psnr: PSNR,
    tmp_path_factory: pytest.TempPathFactory,
    scheduler_classes: dict[str, Any],
) -> None:
    assert page_run["mask panel shown"]
    reference = diffusers_reference(
        "tiny-sd15", tmp_path_factory.mktemp("inpaint-ref"), scheduler_classes, "inpaint"
    )
    (painted, painted_rgb), (from_file, file_rgb) = page_run["painted"], page_run["mask file"]
    # The stroke: a band across the lower part, nothing above it.
    mask = painted["mask"]
    assert mask[48, 16:48].min() == 255 and mask[:30].max() == 0
    # The file: the left half.
    assert (from_file["mask"][:, :32] == 255).all() and (from_file["mask"][:, 32:] == 0).all()
    for inputs, got in ((painted, painted_rgb), (from_file, file_rgb)):
        expected, _ = reference(
            "euler", image=inputs["image"], mask_image=inputs["mask"], strength=0.8
        )
        assert psnr(got, expected) >= 40
    assert psnr(painted_rgb, file_rgb) < 35
    assert page_run["mask after clear"] is None


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
        (["--mask", str(notes)], "a mask needs a start image: give the image too"),
        (
            ["--image", str(picture[1]), "--mask", str(notes)],
            f"{notes} is not a PNG, JPEG, WebP, GIF or BMP image",
        ),
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
