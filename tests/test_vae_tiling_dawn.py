"""Image to image with the VAE in tiles, in Node through Dawn (the page's JS
pipelines), tiny SD 1.5 and SDXL presets: the start image encoded by the
build's ``vae_encode_tile`` in overlapping tiles whose latents are blended, the
result decoded in tiles, against diffusers' img2img pipeline whose VAE encodes
and decodes in the same tiles the same way (``wsd_capture.tiles``); the same
generation with the VAE whole, which tiling measurably changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .conftest import SCHEDULER_CLASSES
from .editing import build_fixture, diffusers_reference, node_runs, start_image

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

VARIATION = {"task": "image-to-image", "scheduler": "euler", "strength": 0.8}


@pytest.mark.parametrize("preset", ["tiny-sd15", "tiny-sdxl"])
def test_image_to_image_in_vae_tiles_matches_diffusers_on_the_same_tiles(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    psnr: PSNR,
    preset: str,
) -> None:
    build: Path = request.getfixturevalue(build_fixture(preset))
    tiling = json.loads((build / "manifest.json").read_text())["vae_tiling"]
    assert tiling["encode_function"] == "vae_encode_tile"
    plan = (tuple(tiling["tile"]), tuple(tiling["overlap"]))
    tiled, whole = node_runs(
        build,
        [{**VARIATION, "vaeTiling": "on"}, {**VARIATION, "vaeTiling": "off"}],
        image=start_image(64),
    )
    # 8 x 8 latents in 4 x 4 tiles overlapping by 1: 3 x 3 tiles, encoding and decoding.
    assert (tiled["vaeEncodeTiles"], tiled["vaeTiles"]) == (9, 9)
    assert (whole["vaeEncodeTiles"], whole["vaeTiles"]) == (0, 0)

    run: Callable[..., Any] = diffusers_reference(
        preset, tmp_path, SCHEDULER_CLASSES, "img2img", vae_tiles=plan
    )
    expected, latents = run("euler", image=start_image(64), strength=VARIATION["strength"])
    scale = float(np.abs(latents).max())
    figures = {
        "tiled_vs_reference_db": psnr(tiled["pixels"], expected),
        "latent_error": float(np.abs(tiled["latents"].reshape(latents.shape) - latents).max()),
        "tiled_vs_whole_latent_error": float(np.abs(tiled["latents"] - whole["latents"]).max()),
    }
    assert figures["tiled_vs_reference_db"] >= 40, figures
    assert figures["latent_error"] <= 1e-3 * scale, figures
    # Tiling changes a random-weight encoder's latents (its group norms and
    # attention see one tile), so the comparison above can fail.
    assert figures["tiled_vs_whole_latent_error"] > 1e-2 * scale, figures
