"""Inpainting in Node through Dawn (the page's JS pipeline), with an ordinary
checkpoint (tiny-sd15, tiny-sdxl: a 4-channel UNet, the image blended back
after each step) and an inpainting one (tiny-sd15-inpaint, tiny-sdxl-inpaint: a
9-channel UNet), against diffusers' StableDiffusionInpaintPipeline and
StableDiffusionXLInpaintPipeline: same image, mask, prompt, seed, strength and
scheduler (mask blur and padding off; diffusers' default strength)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import INPAINT_SCHEDULERS, Reference, diffusers_reference, masks, start_image

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
            directory = tmp_path_factory.mktemp(f"inpaint-{preset}")
            made[preset] = diffusers_reference(preset, directory, scheduler_classes, "inpaint")
        return made[preset]

    return reference


@pytest.mark.parametrize(
    ("preset", "scheduler"), [(p, s) for p, names in INPAINT_SCHEDULERS.items() for s in names]
)
def test_inpainting_matches_diffusers(
    references: Callable[[str], Reference],
    editing_results: Callable[[str], dict[Any, Any]],
    psnr: PSNR,
    preset: str,
    scheduler: str,
) -> None:
    image = start_image(64)
    images = {}
    for name, mask in masks(64).items():
        expected, latents = references(preset)(scheduler, image=image, mask_image=mask)
        got, got_latents = editing_results(preset)["inpainting", scheduler, name]
        assert psnr(got, expected) >= 40, (name, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images[name] = got
    # The mask matters: the two images are measurably different.
    assert psnr(images["half"], images["disc"]) < 35
