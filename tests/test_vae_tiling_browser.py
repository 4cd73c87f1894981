"""Tiled VAE decode in headless Chromium (WebGPU on SwiftShader), tiny SD 1.5 and
SDXL presets: the page's tiles, decoded by the build's ``vae_decode_tile`` and
blended, against diffusers' decoder run on the same tiles and blended the same
way (``wsd_capture.tiles``), from the page's own final latents; the same
generation decoded whole against diffusers' whole decode; and how far tiling
moves the image (what diffusers' ``enable_tiling`` does to it too)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from wsd_capture import write_preset
from wsd_capture.tiles import decode_in_tiles, to_pixels
from wsd_web.render import Rendering, render_many

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = pytest.mark.browser

RUN = {
    "prompt": "a lighthouse at dawn",
    "negative_prompt": "blurry",
    "seed": 21,
    "steps": 6,
    "scheduler": "euler",
}

Decoder = Callable[[torch.Tensor], torch.Tensor]


def _decoder(preset: str, directory: Path) -> Decoder:
    """diffusers' AutoencoderKL of ``preset``: latents as the scheduler leaves them to the
    image in [-1, 1], as the pipelines decode them."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(write_preset(preset, directory / preset) / "vae")
    assert getattr(vae.config, "latents_mean", None) is None
    scaling = float(vae.config.scaling_factor)

    def decode(latents: torch.Tensor) -> torch.Tensor:
        return vae.decode(latents / scaling).sample

    return decode


def _renderings(build: Path) -> tuple[Rendering, Rendering]:
    tiled, whole = render_many(
        build,
        [
            {**RUN, "return_latents": True, "vae_tiling": "on"},
            {**RUN, "return_latents": True, "vae_tiling": "off"},
        ],
    )
    return tiled, whole


def _rgb(rendering: Rendering) -> np.ndarray:
    pixels = np.frombuffer(rendering.rgba, np.uint8).reshape(rendering.height, rendering.width, 4)
    return pixels[..., :3]


def _check(build: Path, decode: Decoder, psnr: PSNR) -> dict[str, Any]:
    manifest = json.loads((build / "manifest.json").read_text())
    tiling = manifest["vae_tiling"]
    shape = manifest["latent"]["shape"]
    factor = manifest["latent"]["vae_scale_factor"]
    tiled, whole = _renderings(build)
    assert tiled.vae_tiles == 9
    assert whole.vae_tiles == 0
    # The same generation up to the decode.
    assert tiled.latents == whole.latents
    latents = np.asarray(tiled.latents, dtype=np.float32).reshape(shape)
    reference = decode_in_tiles(decode, latents, tiling["tile"], tiling["overlap"], factor)
    with torch.no_grad():
        untiled = decode(torch.from_numpy(latents)).double().numpy()
    figures = {
        "tiled_vs_reference_db": psnr(_rgb(tiled), to_pixels(reference)),
        "whole_vs_reference_db": psnr(_rgb(whole), to_pixels(untiled)),
        "tiled_vs_whole_db": psnr(_rgb(tiled), _rgb(whole)),
    }
    assert figures["tiled_vs_reference_db"] >= 40, figures
    assert figures["whole_vs_reference_db"] >= 40, figures
    # Tiling changes a random-weight VAE's image (its group norms and attention
    # see one tile), so the comparison above can fail.
    assert figures["tiled_vs_whole_db"] < 35, figures
    return figures


def test_tiny_sd15_tiles_match_diffusers_decoder_on_the_same_tiles(
    tiny_sd15_build: Path, tmp_path: Path, psnr: PSNR
) -> None:
    _check(tiny_sd15_build, _decoder("tiny-sd15", tmp_path), psnr)


def test_tiny_sdxl_tiles_match_diffusers_decoder_on_the_same_tiles(
    tiny_sdxl_build: Path, tmp_path: Path, psnr: PSNR
) -> None:
    _check(tiny_sdxl_build, _decoder("tiny-sdxl", tmp_path), psnr)
