"""Inpainting in Node through Dawn (the page's JS pipeline), with an ordinary
checkpoint (tiny-sd15, tiny-sdxl: a 4-channel UNet, the image blended back
after each step) and an inpainting one (tiny-sd15-inpaint, tiny-sdxl-inpaint: a
9-channel UNet), against diffusers' StableDiffusionInpaintPipeline and
StableDiffusionXLInpaintPipeline: same image, mask, prompt, seed, strength and
scheduler (mask blur and padding off)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import Reference, Result, diffusers_reference, node_generate, rgba_option, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

#: The presets with an ordinary UNet (4 channels) and with an inpainting checkpoint's (9).
SCHEDULERS = {
    "tiny-sd15": ("euler", "dpmpp-2m"),
    "tiny-sdxl": ("euler", "ddim"),
    "tiny-sd15-inpaint": ("euler", "dpmpp-2m"),
    "tiny-sdxl-inpaint": ("euler", "ddim"),
}


def masks(size: int) -> dict[str, np.ndarray]:
    """Grayscale masks, white where the image is repainted: the right half, and a
    disc (gray at its rim: below half white is kept, as diffusers binarises)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    half = np.where(x >= 0.5, 255, 0).astype(np.uint8)
    d = np.sqrt((x - 0.4) ** 2 + (y - 0.5) ** 2)
    disc = np.clip((0.3 - d) / 0.05 * 255, 0, 255).round().astype(np.uint8)
    return {"half": half, "disc": disc}


#: (scheduler, mask) -> the page's image and final latents.
NodeRuns = dict[tuple[str, str], Result]


@pytest.fixture(scope="module")
def node_runs(request: pytest.FixtureRequest) -> Callable[[str], NodeRuns]:
    done: dict[str, NodeRuns] = {}

    def runs(preset: str) -> NodeRuns:
        if preset not in done:
            name = preset.removeprefix("tiny-").replace("-", "_")
            build: Path = request.getfixturevalue(f"tiny_{name}_build")
            settings = [(s, m) for s in SCHEDULERS[preset] for m in masks(64)]
            variations = [{"scheduler": s, "mask": rgba_option(masks(64)[m])} for s, m in settings]
            results = node_generate(build, "inpainting", variations, image=start_image(64))
            done[preset] = dict(zip(settings, results, strict=True))
        return done[preset]

    return runs


@pytest.fixture(scope="module")
def references(
    tmp_path_factory: pytest.TempPathFactory, scheduler_classes: dict[str, Any]
) -> Callable[[str], Reference]:
    made: dict[str, Reference] = {}

    def reference(preset: str) -> Reference:
        if preset not in made:
            directory = tmp_path_factory.mktemp(f"inpaint-{preset}")
            made[preset] = diffusers_reference(preset, directory, scheduler_classes, "inpaint")
        return made[preset]

    return reference


@pytest.mark.parametrize(
    ("preset", "scheduler"), [(p, s) for p, schedulers in SCHEDULERS.items() for s in schedulers]
)
def test_inpainting_matches_diffusers(
    references: Callable[[str], Reference],
    node_runs: Callable[[str], NodeRuns],
    psnr: PSNR,
    preset: str,
    scheduler: str,
) -> None:
    image = start_image(64)
    images = {}
    for name, mask in masks(64).items():
        expected, latents = references(preset)(scheduler, image=image, mask_image=mask)
        got, got_latents = node_runs(preset)[scheduler, name]
        assert psnr(got, expected) >= 40, (name, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[name] = got
    # The mask matters: the two images are measurably different.
    assert psnr(images["half"], images["disc"]) < 35
