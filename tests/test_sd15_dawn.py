"""SD 1.5 in Node through Dawn (npm `webgpu`, the benchmark's runtime): the same
JS pipeline as the page, on the compiled tiny-sd15, against diffusers."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.server import STATIC_DIR

if TYPE_CHECKING:
    from .conftest import PSNR, Reference

pytestmark = pytest.mark.dawn

RENDER = STATIC_DIR.parent / "node" / "render.mjs"
RUN = {
    "prompt": "a red lighthouse",
    "negative_prompt": "fog",
    "seed": 11,
    "steps": 6,
    "scheduler": "pndm",
}
#: ``RUN`` as the Node runner takes it, with the latents and pixels returned.
RENDER_OPTIONS = {
    "prompt": RUN["prompt"],
    "negativePrompt": RUN["negative_prompt"],
    "seed": RUN["seed"],
    "steps": RUN["steps"],
    "scheduler": RUN["scheduler"],
    "returnLatents": True,
    "returnPixels": True,
}


def node_render(build: Path, options: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(RENDER), str(build), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_node_dawn_generation_matches_diffusers(
    tiny_sd15_build: Path, diffusers_reference: Reference, psnr: PSNR
) -> None:
    report = node_render(
        tiny_sd15_build,
        {**RENDER_OPTIONS, "repeat": 2},
    )
    image, latents = diffusers_reference(RUN)
    first, second = report["runs"]
    pixels = np.frombuffer(base64.b64decode(first["rgba"]), np.uint8)
    pixels = pixels.reshape(report["height"], report["width"], 4)[..., :3]
    assert psnr(pixels, image) >= 40
    got = np.asarray(first["latents"], np.float32).reshape(latents.shape)
    assert np.abs(got - latents).max() <= 1e-3
    assert second["rgba"] == first["rgba"]  # a generation is deterministic
    assert second["gpuBytes"] == first["gpuBytes"]
    assert len(first["timings"]["unetStepMs"]) == RUN["steps"] + 1  # PLMS repeats one step


def test_fused_attention_generation_matches_diffusers(
    tiny_sd15_fused_build: Path, diffusers_reference: Reference, psnr: PSNR
) -> None:
    """The fused attention kernel in a whole pipeline (every attention of the UNet
    and the VAE; builds fuse only large ones, which no tiny preset has)."""
    assert b"fused_attention" in (tiny_sd15_fused_build / "model.wasm").read_bytes()
    report = node_render(tiny_sd15_fused_build, RENDER_OPTIONS)
    assert_run_matches(report, diffusers_reference, psnr, latent_error=1e-3)


def test_chunked_attention_generation_matches_diffusers(
    tiny_sd15_chunked_build: Path, diffusers_reference: Reference, psnr: PSNR
) -> None:
    """Every attention as two scalar products around a softmax, in ranges of
    queries (``attention_chunk_bytes``, the shader-f16 and fp32 paths), in a
    whole pipeline: no fused kernel, and diffusers' numbers."""
    wasm = (tiny_sd15_chunked_build / "model.wasm").read_bytes()
    assert b"fused_attention" not in wasm and b"scaled_softmax" in wasm
    report = node_render(tiny_sd15_chunked_build, RENDER_OPTIONS)
    assert_run_matches(report, diffusers_reference, psnr, latent_error=1e-3)


def assert_run_matches(
    report: dict[str, Any],
    reference: Reference,
    psnr: PSNR,
    *,
    latent_error: float,
    of_scale: bool = False,
) -> None:
    """The report's one run of ``RUN`` against diffusers: >= 40 dB, and latents within
    ``latent_error`` (``of_scale``: times their largest magnitude where that exceeds 1)."""
    image, latents = reference(RUN)
    [run] = report["runs"]
    pixels = np.frombuffer(base64.b64decode(run["rgba"]), np.uint8)
    pixels = pixels.reshape(report["height"], report["width"], 4)[..., :3]
    assert psnr(pixels, image) >= 40
    got = np.asarray(run["latents"], np.float32).reshape(latents.shape)
    scale = max(1.0, float(np.abs(latents).max())) if of_scale else 1.0
    assert np.abs(got - latents).max() <= latent_error * scale


def test_an_fp16_build_runs_its_fp32_path_where_shader_f16_is_missing(
    tiny_sd15_fp16_build: Path, diffusers_reference: Reference, psnr: PSNR
) -> None:
    """SwiftShader has no shader-f16: the fp16 build's fp32 library runs, on the
    same fp16 shards widened to float32, and matches diffusers (fp32 weights)."""
    report = node_render(tiny_sd15_fp16_build, RENDER_OPTIONS)
    assert "shader-f16" not in report["features"]
    assert report["kernelPath"] == "fp32"
    [passed] = report["passedOver"]
    assert passed["name"] == "shader-f16" and "shader-f16" in passed["why"]
    # The weights are diffusers' rounded to fp16: closer than the fp16 arithmetic
    # (1e-2 of scale on the H200), not as close as an fp32 build (1e-3).
    assert_run_matches(report, diffusers_reference, psnr, latent_error=1e-2, of_scale=True)


def test_a_kernel_path_the_device_lacks_is_one_line(tiny_sd15_fp16_build: Path) -> None:
    result = subprocess.run(
        ["node", str(RENDER), str(tiny_sd15_fp16_build), json.dumps({"kernelPath": "shader-f16"})],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    assert "the kernel path shader-f16 cannot run on this GPU" in result.stderr
    assert "shader-f16, which this adapter lacks" in result.stderr


def test_node_render_usage(tmp_path: Path) -> None:
    result = subprocess.run(["node", str(RENDER)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage: node render.mjs DIR" in result.stderr


def test_the_subgroup_matrix_probe_reports_what_the_adapter_cannot_compile() -> None:
    """The tensor-core probe (run on the H200, docs/kernels.md) on SwiftShader: no
    shader-f16 and no subgroup matrices, so every variant reports its compile error."""
    probe = STATIC_DIR.parent / "node" / "probe_subgroup_matrix.mjs"
    result = subprocess.run(
        ["node", str(probe), "64", "64", "32"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["subgroup_matrix_configs"] == []
    [shape] = report["shapes"]
    assert (shape["M"], shape["N"], shape["K"]) == (64, 64, 32)
    wanted = {"scalar 64x64", "subgroup-matrix 32x32", "subgroup-matrix 64x64"}
    assert set(shape["results"]) >= wanted
    assert all("f16" in r["error"] for r in shape["results"].values())
