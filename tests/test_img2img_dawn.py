"""Image to image in Node through Dawn (the page's JS pipeline), on the compiled
tiny presets, against diffusers' StableDiffusionImg2ImgPipeline and
StableDiffusionXLImg2ImgPipeline: same image, prompt, seed, strength and scheduler."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.server import STATIC_DIR

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

RENDER = STATIC_DIR.parent / "node" / "render.mjs"
PROMPT, NEGATIVE, SEED, STEPS = "a red lighthouse", "fog", 5, 8

Img2Img = Callable[[np.ndarray, str, float], tuple[np.ndarray, np.ndarray]]


def start_image(size: int) -> np.ndarray:
    """A deterministic RGB picture: gradients, a disc and some seeded noise."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.08).astype(float)
    noise = np.random.default_rng(1).uniform(-0.1, 0.1, (size, size, 3))
    rgb = np.stack([x, y, disc], axis=-1) * 0.8 + 0.1 + noise
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def _img2img_reference(preset: str, directory: Path, classes: dict[str, Any]) -> Img2Img:
    import diffusers
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline
    from PIL import Image

    from wsd_capture import PRESET_KINDS, write_preset

    model_dir = write_preset(preset, directory / preset)
    xl = PRESET_KINDS[preset] == "sdxl"
    cls = StableDiffusionXLImg2ImgPipeline if xl else StableDiffusionImg2ImgPipeline
    kwargs = {"add_watermarker": False} if xl else {}
    pipe = cls.from_pretrained(model_dir, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    own = pipe.scheduler.config

    def run(image: np.ndarray, scheduler: str, strength: float) -> tuple[np.ndarray, np.ndarray]:
        class_name, overrides = classes[scheduler]
        pipe.scheduler = getattr(diffusers, class_name).from_config(own, **overrides)
        args = {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "image": Image.fromarray(image),
            "strength": strength,
            "num_inference_steps": STEPS,
        }
        latents = pipe(
            **args, generator=torch.Generator().manual_seed(SEED), output_type="latent"
        ).images
        out = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="np")
        return (out.images[0] * 255).round().astype(np.uint8), latents.numpy()

    return run


def node_img2img(
    build: Path, image: np.ndarray, scheduler: str, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    h, w, _ = image.shape
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    options: dict[str, Any] = {
        "task": "image-to-image",
        "image": {"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": w, "height": h},
        "strength": strength,
        "prompt": PROMPT,
        "negativePrompt": NEGATIVE,
        "seed": SEED,
        "steps": STEPS,
        "scheduler": scheduler,
        "returnLatents": True,
        "returnPixels": True,
    }
    result = subprocess.run(
        ["node", str(RENDER), str(build), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    pixels = np.frombuffer(base64.b64decode(run["rgba"]), np.uint8).reshape(h, w, 4)[..., :3]
    return pixels, np.asarray(run["latents"], np.float32)


@pytest.fixture(scope="module")
def sd15_img2img(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Img2Img:
    directory = tmp_path_factory.mktemp("img2img-sd15")
    return _img2img_reference("tiny-sd15", directory, scheduler_classes)


@pytest.fixture(scope="module")
def sdxl_img2img(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Img2Img:
    directory = tmp_path_factory.mktemp("img2img-sdxl")
    return _img2img_reference("tiny-sdxl", directory, scheduler_classes)


@pytest.mark.parametrize("scheduler", ["euler", "dpmpp-2m"])
def test_sd15_img2img_matches_diffusers(
    tiny_sd15_build: Path, sd15_img2img: Img2Img, psnr: PSNR, scheduler: str
) -> None:
    image = start_image(64)
    images = {}
    for strength in (0.3, 0.8):
        expected, latents = sd15_img2img(image, scheduler, strength)
        got, got_latents = node_img2img(tiny_sd15_build, image, scheduler, strength)
        assert psnr(got, expected) >= 40, (scheduler, strength)
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[strength] = got
    # The strength matters: the two images are measurably different.
    assert psnr(images[0.3], images[0.8]) < 35


@pytest.mark.parametrize("scheduler", ["euler", "ddim"])
def test_sdxl_img2img_matches_diffusers(
    tiny_sdxl_build: Path, sdxl_img2img: Img2Img, psnr: PSNR, scheduler: str
) -> None:
    image = start_image(64)
    expected, latents = sdxl_img2img(image, scheduler, 0.8)
    got, got_latents = node_img2img(tiny_sdxl_build, image, scheduler, 0.8)
    assert psnr(got, expected) >= 40
    scale = float(np.abs(latents).max())
    assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
