"""GPU memory modes in headless Chromium (WebGPU on SwiftShader), tiny SD 1.5:
sequential offload gives the same image with less held during the denoising
loop, and tiled decode holds less during the decode; every stage's high-water
mark comes from tvmjs' own accounting of the bytes it has allocated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wsd_web.render import Rendering, render_many

pytestmark = pytest.mark.browser

RUN = {"prompt": "a lighthouse", "seed": 4, "steps": 3, "scheduler": "euler"}


@pytest.fixture(scope="module")
def modes(tiny_sd15_build: Path) -> dict[str, Rendering]:
    """One page: resident, offload, offload with tiles, then resident again."""
    runs: dict[str, dict[str, Any]] = {
        "resident": {"offload": False, "vae_tiling": "off"},
        "offload": {"offload": True, "vae_tiling": "off"},
        "offload-tiles": {"offload": True, "vae_tiling": "on"},
        "resident-again": {"offload": False, "vae_tiling": "off"},
    }
    done = render_many(tiny_sd15_build, [{**RUN, **extra} for extra in runs.values()])
    return dict(zip(runs, done, strict=True))


def _weight_bytes(build: Path, *components: str) -> int:
    manifest = json.loads((build / "manifest.json").read_text())
    return sum(int(manifest["components"][c]["param_bytes"]) for c in components)


def test_offload_gives_the_same_image(modes: dict[str, Rendering]) -> None:
    assert modes["offload"].rgba == modes["resident"].rgba
    assert modes["resident-again"].rgba == modes["resident"].rgba


def test_offload_holds_only_the_unet_weights_while_denoising(
    modes: dict[str, Rendering], tiny_sd15_build: Path
) -> None:
    """Without offload the text encoder's and the decoder's weights are held during
    the denoising loop (and the buffers pooled for their stages); with it, not."""
    resident, offload = modes["resident"].peak_bytes, modes["offload"].peak_bytes
    assert resident is not None and offload is not None
    others = _weight_bytes(tiny_sd15_build, "text_encoder", "vae_decode")
    assert offload["denoise"] <= resident["denoise"] - others, (resident, offload)
    # The UNet's weights are held in every stage.
    unet = _weight_bytes(tiny_sd15_build, "unet")
    assert min(offload.values()) >= unet


def test_tiles_hold_less_than_a_whole_decode(modes: dict[str, Rendering]) -> None:
    whole, tiled = modes["offload"].peak_bytes, modes["offload-tiles"].peak_bytes
    assert whole is not None and tiled is not None
    assert modes["offload-tiles"].vae_tiles == 9
    assert tiled["decode"] < whole["decode"], (whole, tiled)


@pytest.mark.parametrize("mode", ["resident", "offload", "offload-tiles"])
def test_the_build_reckons_each_mode_within_a_tenth_above_its_peak(
    modes: dict[str, Rendering], mode: str
) -> None:
    """The memory the build states (weights per component, planned storage per
    function) reckons a bound on what the generation held, and a close one."""
    rendering = modes[mode]
    assert rendering.peak_bytes is not None and rendering.memory_need_bytes is not None
    peak = max(rendering.peak_bytes.values())
    assert peak <= rendering.memory_need_bytes <= 1.1 * peak, (peak, rendering.memory_need_bytes)
