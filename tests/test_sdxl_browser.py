"""SDXL end to end: the compiled tiny-sdxl in headless Chromium (WebGPU on
SwiftShader) against diffusers' StableDiffusionXLPipeline on the same weights,
prompt, negative prompt (given, and none: zero embeddings), seed, steps,
guidance, scheduler (Euler, the model's own, and Euler ancestral) and
micro-conditioning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.render import Rendering, render_many

if TYPE_CHECKING:
    from .conftest import PSNR, Reference

pytestmark = pytest.mark.browser

PROMPT = "a photo of a red fox in the snow, golden light"
NEGATIVE = "blurry, dark"


def run(scheduler: str, seed: int, negative: str = NEGATIVE, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": PROMPT,
        "negative_prompt": negative,
        "seed": seed,
        "steps": 8,
        "scheduler": scheduler,
        **extra,
    }


RUNS: list[dict[str, Any]] = [
    run("euler", 7),
    run("euler", 7, negative=""),
    run("euler-a", 9),
    run("euler-a", 10, negative=""),
    run("euler", 7, original_size=(48, 80), crops_coords_top_left=(8, 0), target_size=(64, 64)),
]


def run_id(r: dict[str, Any]) -> str:
    extra = "-neg" if r["negative_prompt"] else "-noneg"
    extra += "-micro" if r.get("original_size") else ""
    return f"{r['scheduler']}-seed{r['seed']}{extra}"


assert len({run_id(r) for r in RUNS}) == len(RUNS)


@pytest.fixture(scope="module")
def renderings(tiny_sdxl_build: Path) -> list[Rendering]:
    """The runs (the first with the model's default scheduler), then three short
    generations in a row for the memory check, in one page."""
    page_runs = [{**r, "return_latents": True} for r in RUNS]
    page_runs[0]["scheduler"] = None
    memory_runs = [{"prompt": f"run {i}", "seed": i, "steps": 2} for i in range(3)]
    return render_many(tiny_sdxl_build, page_runs + memory_runs)


def rgb(rendering: Rendering) -> np.ndarray:
    pixels = np.frombuffer(rendering.rgba, np.uint8).reshape(rendering.height, rendering.width, 4)
    assert (pixels[..., 3] == 255).all()
    return pixels[..., :3]


@pytest.mark.parametrize("index", range(len(RUNS)), ids=[run_id(r) for r in RUNS])
def test_browser_matches_diffusers_sdxl(
    renderings: list[Rendering], diffusers_reference_xl: Reference, psnr: PSNR, index: int
) -> None:
    options = RUNS[index]
    got = renderings[index]
    image, latents = diffusers_reference_xl(options)
    assert got.scheduler == options["scheduler"]
    assert (got.height, got.width) == image.shape[:2]
    assert psnr(rgb(got), image) >= 40
    assert got.latents is not None
    got_latents = np.asarray(got.latents, dtype=np.float32).reshape(latents.shape)
    assert np.abs(got_latents - latents).max() <= 1e-3


def test_conditioning_changes_the_image(renderings: list[Rendering], psnr: PSNR) -> None:
    """Guards against a pipeline that ignores a conditioning input: these runs
    differ from the first in one thing only and give clearly different images."""
    assert psnr(rgb(renderings[0]), rgb(renderings[1])) < 35  # negative prompt vs zeros
    assert psnr(rgb(renderings[0]), rgb(renderings[4])) < 35  # micro-conditioning


def test_generations_release_their_gpu_memory(renderings: list[Rendering]) -> None:
    after = [r.gpu_bytes[0] for r in renderings[len(RUNS) :]]
    assert after[1:] == [after[0]] * (len(after) - 1), after


def test_manifest_describes_sdxl(tiny_sdxl_build: Path) -> None:
    manifest = json.loads((tiny_sdxl_build / "manifest.json").read_text())
    assert manifest["kind"] == "sdxl"
    assert manifest["scheduler"]["class_name"] == "EulerDiscreteScheduler"
    assert manifest["tokenizer_2"]["pad_token_id"] == 0  # "!", not EOS
    assert manifest["tokenizer"]["pad_token_id"] == manifest["tokenizer"]["eos_token_id"]
    assert manifest["conditioning"] == {
        "force_zeros_for_empty_prompt": True,
        "pooled_token": "argmax",
        "pooled_dim": 64,
        "time_ids_dim": 6,
        "vae_force_upcast": True,
    }
    assert manifest["image"] == {"height": 64, "width": 64}
