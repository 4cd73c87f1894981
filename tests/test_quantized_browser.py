"""Quantized weights end to end: tiny-sd15 built with ``--quantize int8`` and
``--quantize int4``, run in headless Chromium (WebGPU on SwiftShader), against
diffusers' pipeline whose UNet and text encoder weights were quantized and
dequantized the same way (``wsd_capture.quantized.quantize_torch_model``): the
kernels that unpack the integers must compute what those weights give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.render import Rendering, render_many

from .test_sd15_browser import assert_matches, rgb, run

if TYPE_CHECKING:
    from .conftest import PSNR, Reference

pytestmark = pytest.mark.browser

RUNS: list[dict[str, Any]] = [run("dpmpp-2m", 7), run("euler-a", 12, negative_prompt="")]


@pytest.fixture(scope="module")
def int8_renderings(tiny_sd15_int8_build: Path) -> list[Rendering]:
    return render_many(tiny_sd15_int8_build, [{**r, "return_latents": True} for r in RUNS])


@pytest.fixture(scope="module")
def int4_renderings(tiny_sd15_int4_build: Path) -> list[Rendering]:
    return render_many(tiny_sd15_int4_build, [{**r, "return_latents": True} for r in RUNS])


@pytest.mark.parametrize("index", range(len(RUNS)))
def test_an_int8_build_matches_diffusers_with_the_same_int8_weights(
    int8_renderings: list[Rendering], diffusers_reference_int8: Reference, psnr: PSNR, index: int
) -> None:
    assert_matches(int8_renderings[index], RUNS[index], diffusers_reference_int8, psnr)


@pytest.mark.parametrize("index", range(len(RUNS)))
def test_an_int4_build_matches_diffusers_with_the_same_int4_weights(
    int4_renderings: list[Rendering], diffusers_reference_int4: Reference, psnr: PSNR, index: int
) -> None:
    assert_matches(int4_renderings[index], RUNS[index], diffusers_reference_int4, psnr)


def test_quantization_changes_the_image_less_than_a_new_seed(
    int8_renderings: list[Rendering],
    int4_renderings: list[Rendering],
    diffusers_reference: Reference,
    psnr: PSNR,
) -> None:
    """The quantized builds are near the unquantized model's image, int8 nearer than int4."""
    image, _ = diffusers_reference(RUNS[0])
    other_seed, _ = diffusers_reference({**RUNS[0], "seed": 99})
    int8 = psnr(rgb(int8_renderings[0]), image)
    int4 = psnr(rgb(int4_renderings[0]), image)
    assert int8 > psnr(other_seed, image) + 3
    assert int8 >= int4
    assert not np.array_equal(rgb(int4_renderings[0]), image)


@pytest.mark.parametrize(
    ("fixture", "bits"), [("tiny_sd15_int8_build", 8), ("tiny_sd15_int4_build", 4)]
)
def test_the_manifest_says_how_the_weights_are_stored(
    fixture: str, bits: int, tiny_sd15_build: Path, request: pytest.FixtureRequest
) -> None:
    build: Path = request.getfixturevalue(fixture)
    manifest = json.loads((build / "manifest.json").read_text())
    plain = json.loads((tiny_sd15_build / "manifest.json").read_text())
    assert manifest["model"]["quantize"] == f"int{bits}"
    assert plain["model"]["quantize"] == "none"
    for name in ("unet", "text_encoder"):
        entry = manifest["components"][name]
        assert entry["quantization"]["bits"] == bits
        assert entry["quantization"]["format"] == "packed-uint32"
        assert (
            entry["quantization"]["unquantized_bytes"] == plain["components"][name]["param_bytes"]
        )
        assert entry["param_bytes"] < plain["components"][name]["param_bytes"]
    # The VAE is not quantized.
    assert "quantization" not in manifest["components"]["vae_decode"]
    cache = json.loads((build / "tensor-cache.json").read_text())
    dtypes = {r["dtype"] for shard in cache["records"] for r in shard["records"]}
    assert "uint32" in dtypes
