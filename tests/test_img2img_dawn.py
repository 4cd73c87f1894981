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


def img2img_reference(preset: str, directory: Path, classes: dict[str, Any]) -> Img2Img:
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
            # The page's default; diffusers' SDXL pipelines default to 5.0.
            "guidance_scale": 7.5,
        }
        latents = pipe(
            **args, generator=torch.Generator().manual_seed(SEED), output_type="latent"
        ).images
        out = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="np")
        return (out.images[0] * 255).round().astype(np.uint8), latents.numpy()

    return run


SCHEDULERS = {"tiny-sd15": ("euler", "dpmpp-2m"), "tiny-sdxl": ("euler", "ddim")}
STRENGTHS = (0.3, 0.8)

#: (scheduler, strength) -> the page's image and final latents.
NodeRuns = dict[tuple[str, float], tuple[np.ndarray, np.ndarray]]


def node_img2img(build: Path, image: np.ndarray, settings: list[tuple[str, float]]) -> NodeRuns:
    """Image to image through render.mjs: one loaded model, one generation per setting."""
    h, w, _ = image.shape
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    options: dict[str, Any] = {
        "task": "image-to-image",
        "image": {"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": w, "height": h},
        "variations": [{"scheduler": s, "strength": strength} for s, strength in settings],
        "prompt": PROMPT,
        "negativePrompt": NEGATIVE,
        "seed": SEED,
        "steps": STEPS,
        "returnLatents": True,
        "returnPixels": True,
    }
    result = subprocess.run(
        ["node", str(RENDER), str(build), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [r["variation"] for r in runs] == list(range(len(settings)))
    out: NodeRuns = {}
    for setting, run in zip(settings, runs, strict=True):
        pixels = np.frombuffer(base64.b64decode(run["rgba"]), np.uint8).reshape(h, w, 4)[..., :3]
        out[setting] = (pixels, np.asarray(run["latents"], np.float32))
    return out


@pytest.fixture(scope="module")
def node_runs(request: pytest.FixtureRequest) -> Callable[[str], NodeRuns]:
    """Each preset's runs, made once (loading a build on SwiftShader is the slow part)."""
    done: dict[str, NodeRuns] = {}

    def runs(preset: str) -> NodeRuns:
        if preset not in done:
            build: Path = request.getfixturevalue(f"tiny_{preset.removeprefix('tiny-')}_build")
            settings = [(s, strength) for s in SCHEDULERS[preset] for strength in STRENGTHS]
            done[preset] = node_img2img(build, start_image(64), settings)
        return done[preset]

    return runs


@pytest.fixture(scope="module")
def sd15_img2img(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Img2Img:
    directory = tmp_path_factory.mktemp("img2img-sd15")
    return img2img_reference("tiny-sd15", directory, scheduler_classes)


@pytest.fixture(scope="module")
def sdxl_img2img(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Img2Img:
    directory = tmp_path_factory.mktemp("img2img-sdxl")
    return img2img_reference("tiny-sdxl", directory, scheduler_classes)


@pytest.mark.parametrize(
    ("preset", "scheduler"), [(p, s) for p, schedulers in SCHEDULERS.items() for s in schedulers]
)
def test_img2img_matches_diffusers(
    request: pytest.FixtureRequest,
    node_runs: Callable[[str], NodeRuns],
    psnr: PSNR,
    preset: str,
    scheduler: str,
) -> None:
    reference: Img2Img = request.getfixturevalue(f"{preset.removeprefix('tiny-')}_img2img")
    image = start_image(64)
    images = {}
    for strength in STRENGTHS:
        expected, latents = reference(image, scheduler, strength)
        got, got_latents = node_runs(preset)[scheduler, strength]
        assert psnr(got, expected) >= 40, (strength, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[strength] = got
    # The strength matters: the two images are measurably different.
    assert psnr(images[0.3], images[0.8]) < 35
