"""Image to image in Node through Dawn (the page's JS pipeline), on the compiled
tiny presets, against diffusers' StableDiffusionImg2ImgPipeline and
StableDiffusionXLImg2ImgPipeline: same image, prompt, seed, strength and scheduler."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import IMG2IMG_SCHEDULERS, STRENGTHS, Reference, diffusers_reference, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


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
    ("preset", "scheduler"), [(p, s) for p, names in IMG2IMG_SCHEDULERS.items() for s in names]
)
def test_img2img_matches_diffusers(
    references: Callable[[str], Reference],
    editing_results: Callable[[str], dict[Any, Any]],
    psnr: PSNR,
    preset: str,
    scheduler: str,
) -> None:
    image = start_image(64)
    images = {}
    for strength in STRENGTHS:
        expected, latents = references(preset)(scheduler, image=image, strength=strength)
        got, got_latents = editing_results(preset)["image-to-image", scheduler, str(strength)]
        assert psnr(got, expected) >= 40, (strength, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[strength] = got
    # The strength matters: the two images are measurably different.
    assert psnr(images[0.3], images[0.8]) < 35
