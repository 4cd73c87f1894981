"""Image to image and inpainting in Node through Dawn (the page's JS pipelines),
on the compiled tiny presets, against diffusers' editing pipelines: the same
picture, mask, prompt, seed, strength and scheduler.

- Image to image (tiny-sd15, tiny-sdxl) against StableDiffusionImg2ImgPipeline
  and StableDiffusionXLImg2ImgPipeline at strengths 0.3 and 0.8.
- Inpainting with an ordinary checkpoint (tiny-sd15, tiny-sdxl: a 4-channel
  UNet, the picture blended back after each step) and an inpainting one
  (tiny-sd15-inpaint, tiny-sdxl-inpaint: a 9-channel UNet) against
  StableDiffusionInpaintPipeline and StableDiffusionXLInpaintPipeline with two
  masks (mask blur and padding off; diffusers' default strength).

Every generation of a preset runs in one Node process (conftest's editing_results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import IMG2IMG_SCHEDULERS, INPAINT_SCHEDULERS, STRENGTHS, masks, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

#: (the page's task, diffusers' pipeline, preset, scheduler) of each test.
CASES = [
    ("image-to-image", "img2img", preset, scheduler)
    for preset, names in IMG2IMG_SCHEDULERS.items()
    for scheduler in names
] + [
    ("inpainting", "inpaint", preset, scheduler)
    for preset, names in INPAINT_SCHEDULERS.items()
    for scheduler in names
]


def _settings(task: str) -> dict[str, dict[str, Any]]:
    """Each setting's label (as the editing plan names it) and diffusers' arguments."""
    if task == "image-to-image":
        return {str(s): {"strength": s} for s in STRENGTHS}
    return {name: {"mask_image": mask} for name, mask in masks(64).items()}


@pytest.mark.parametrize(("task", "pipeline", "preset", "scheduler"), CASES)
def test_editing_matches_diffusers(
    editing_references: Callable[[str, str], Any],
    editing_results: Callable[[str], dict[Any, Any]],
    psnr: PSNR,
    task: str,
    pipeline: str,
    preset: str,
    scheduler: str,
) -> None:
    image = start_image(64)
    images = []
    for label, args in _settings(task).items():
        expected, latents = editing_references(preset, pipeline)(scheduler, image=image, **args)
        got, got_latents = editing_results(preset)[task, scheduler, label]
        assert psnr(got, expected) >= 40, (label, psnr(got, expected))
        scale = float(np.abs(latents).max())
        assert np.abs(got_latents.reshape(latents.shape) - latents).max() <= 1e-3 * scale
        images.append(got)
    # The strength (or the mask) matters: the two images are measurably different.
    assert psnr(images[0], images[1]) < 35
