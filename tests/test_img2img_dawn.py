"""Image to image in Node through Dawn (the page's JS pipeline), on the compiled
tiny presets, against diffusers' StableDiffusionImg2ImgPipeline and
StableDiffusionXLImg2ImgPipeline: same image, prompt, seed, strength and scheduler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import Reference, Result, diffusers_reference, node_generate, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SCHEDULERS = {"tiny-sd15": ("euler", "dpmpp-2m"), "tiny-sdxl": ("euler", "ddim")}
STRENGTHS = (0.3, 0.8)

#: (scheduler, strength) -> the page's image and final latents.
NodeRuns = dict[tuple[str, float], Result]


@pytest.fixture(scope="module")
def node_runs(request: pytest.FixtureRequest) -> Callable[[str], NodeRuns]:
    """Each preset's runs, made once (loading a build on SwiftShader is the slow part)."""
    done: dict[str, NodeRuns] = {}

    def runs(preset: str) -> NodeRuns:
        if preset not in done:
            build: Path = request.getfixturevalue(f"tiny_{preset.removeprefix('tiny-')}_build")
            settings = [(s, strength) for s in SCHEDULERS[preset] for strength in STRENGTHS]
            variations = [{"scheduler": s, "strength": strength} for s, strength in settings]
            results = node_generate(build, "image-to-image", variations, image=start_image(64))
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
            directory = tmp_path_factory.mktemp(f"img2img-{preset}")
            made[preset] = diffusers_reference(preset, directory, scheduler_classes, "img2img")
        return made[preset]

    return reference


@pytest.mark.parametrize(
    ("preset", "scheduler"), [(p, s) for p, schedulers in SCHEDULERS.items() for s in schedulers]
)
def test_img2img_matches_diffusers(
    references: Callable[[str], Reference],
    node_runs: Callable[[str], NodeRuns],
    psnr: PSNR,
    preset: str,
    scheduler: str,
) -> None:
    image = start_image(64)
    images = {}
    for strength in STRENGTHS:
        expected, latents = references(preset)(scheduler, image=image, strength=strength)
        got, got_latents = node_runs(preset)[scheduler, strength]
        assert psnr(got, expected) >= 40, (strength, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[strength] = got
    # The strength matters: the two images are measurably different.
    assert psnr(images[0.3], images[0.8]) < 35
