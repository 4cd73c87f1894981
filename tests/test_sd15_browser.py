"""SD 1.5 end to end: the compiled tiny-sd15 in headless Chromium (WebGPU on
SwiftShader) against diffusers' StableDiffusionPipeline on the same weights,
prompt, negative prompt, seed, steps, guidance and scheduler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from wsd_web.png import png_text
from wsd_web.render import Rendering, render_many

if TYPE_CHECKING:
    from .conftest import PSNR, Reference

pytestmark = pytest.mark.browser

PROMPT = "a watercolor painting of a lighthouse at dawn"
NEGATIVE = "blurry, dark"


def run(scheduler: str, seed: int, steps: int = 8, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE,
        "seed": seed,
        "steps": steps,
        "scheduler": scheduler,
        **extra,
    }


# The first three are referred to by index below.
RUNS: list[dict[str, Any]] = [
    run("dpmpp-2m", 7),
    run("pndm", 7),
    run("dpmpp-2m", 8, negative_prompt=""),
    run("dpmpp-2m-karras", 5),
    run("ddim", 9),
    run("euler", 10),
    run("euler-a", 12),
    run("euler-a", 14, negative_prompt=""),
    run("lcm", 13, steps=4, guidance=1.5),
]
#: tiny-sd15-v: the same weights as a v-prediction model (SD 2.x's DDIM config).
V_RUNS: list[dict[str, Any]] = [run("ddim", 3), run("euler", 4), run("dpmpp-2m", 6, steps=12)]


def run_id(r: dict[str, Any]) -> str:
    negative = "-neg" if r["negative_prompt"] else ""
    return f"{r['scheduler']}-{r['steps']}steps-seed{r['seed']}{negative}"


@pytest.fixture(scope="module")
def renderings(tiny_sd15_build: Path) -> list[Rendering]:
    """The runs, then ten short generations in a row (for the memory check), in one page."""
    memory_runs = [{"prompt": f"run {i}", "seed": i, "steps": 2} for i in range(10)]
    runs = [{**run, "return_latents": True} for run in RUNS]
    return render_many(tiny_sd15_build, runs + memory_runs)


def rgb(rendering: Rendering) -> np.ndarray:
    pixels = np.frombuffer(rendering.rgba, np.uint8).reshape(rendering.height, rendering.width, 4)
    assert (pixels[..., 3] == 255).all()
    return pixels[..., :3]


def assert_matches(
    got: Rendering, options: dict[str, Any], reference: Reference, psnr: PSNR
) -> None:
    image, latents = reference(options)
    assert got.scheduler == options["scheduler"]
    assert (got.height, got.width) == image.shape[:2]
    assert psnr(rgb(got), image) >= 40
    assert got.latents is not None
    got_latents = np.asarray(got.latents, dtype=np.float32).reshape(latents.shape)
    assert np.abs(got_latents - latents).max() <= 1e-3


@pytest.mark.parametrize("index", range(len(RUNS)), ids=[run_id(r) for r in RUNS])
def test_browser_matches_diffusers(
    renderings: list[Rendering], diffusers_reference: Reference, psnr: PSNR, index: int
) -> None:
    assert_matches(renderings[index], RUNS[index], diffusers_reference, psnr)


@pytest.fixture(scope="module")
def v_renderings(tiny_sd15_v_build: Path) -> list[Rendering]:
    return render_many(tiny_sd15_v_build, [{**r, "return_latents": True} for r in V_RUNS])


@pytest.mark.parametrize("index", range(len(V_RUNS)), ids=[run_id(r) for r in V_RUNS])
def test_v_prediction_matches_diffusers(
    v_renderings: list[Rendering], diffusers_reference_v: Reference, psnr: PSNR, index: int
) -> None:
    assert_matches(v_renderings[index], V_RUNS[index], diffusers_reference_v, psnr)


#: An fp16 build in Chromium on SwiftShader (no shader-f16): its fp32 kernel path.
FP16_RUNS: list[dict[str, Any]] = [RUNS[0], RUNS[5], RUNS[8]]


@pytest.fixture(scope="module")
def fp16_renderings(tiny_sd15_fp16_build: Path) -> list[Rendering]:
    return render_many(tiny_sd15_fp16_build, [{**r, "return_latents": True} for r in FP16_RUNS])


@pytest.mark.parametrize("index", range(len(FP16_RUNS)), ids=[run_id(r) for r in FP16_RUNS])
def test_an_fp16_build_on_an_adapter_without_shader_f16_matches_diffusers(
    fp16_renderings: list[Rendering], diffusers_reference: Reference, psnr: PSNR, index: int
) -> None:
    """The fp32 library of an fp16 build on the fp16 shards widened to float32:
    diffusers' image (fp32 weights) at >= 40 dB, latents within 1e-2 of scale."""
    got, options = fp16_renderings[index], FP16_RUNS[index]
    assert got.kernel_path == "fp32"
    image, latents = diffusers_reference(options)
    assert psnr(rgb(got), image) >= 40
    got_latents = np.asarray(got.latents, dtype=np.float32).reshape(latents.shape)
    assert np.abs(got_latents - latents).max() <= 1e-2 * max(1.0, float(np.abs(latents).max()))


def test_a_different_seed_gives_a_different_image(renderings: list[Rendering], psnr: PSNR) -> None:
    assert psnr(rgb(renderings[0]), rgb(renderings[2])) < 35


def test_generations_release_their_gpu_memory(renderings: list[Rendering]) -> None:
    """Ten generations in a row: the runtime's GPU bytes in use do not grow."""
    after = [r.gpu_bytes[0] for r in renderings[len(RUNS) :]]
    assert after[1:] == [after[0]] * (len(after) - 1), after


def test_timings_cover_every_stage(renderings: list[Rendering]) -> None:
    timings = renderings[0].timings
    assert len(timings["unetStepMs"]) == RUNS[0]["steps"]
    assert timings["textEncoderMs"] > 0 and timings["vaeMs"] > 0
    assert timings["totalMs"] >= sum(timings["unetStepMs"])


def test_render_cli_writes_png_and_timings(tiny_sd15_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "image.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsd_web",
            "render",
            str(tiny_sd15_build),
            "--prompt",
            PROMPT,
            "--seed",
            "3",
            "--steps",
            "2",
            "--scheduler",
            "dpmpp-2m",
            "--kernel-path",
            "fp32",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["image"] == str(out)
    assert record["kernel_path"] == "fp32"
    assert len(record["timings"]["unetStepMs"]) == 2
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # The generation's parameters, as the page writes them into its PNGs.
    parameters = png_text(out.read_bytes())["parameters"]
    assert parameters.startswith(f"{PROMPT}\n") and "Seed: 3, " in parameters
    assert "Sampler: dpmpp-2m" in parameters and record["parameters"] == parameters
    assert json.loads(out.with_suffix(".json").read_text())["scheduler"] == "dpmpp-2m"
    # A path the build does not hold: one line naming those it does, no image.
    other = tmp_path / "other.png"
    args = ["render", str(tiny_sd15_build), "--prompt", "x", "--kernel-path", "shader-f16"]
    args += ["--out", str(other)]
    result = subprocess.run(
        [sys.executable, "-m", "wsd_web", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 1
    assert 'this build has no kernel path "shader-f16"; its kernel paths are fp32' in result.stderr
    assert not other.exists()


def test_cancel_stops_between_steps_and_releases_everything(tiny_sd15_build: Path) -> None:
    from wsd_web.headless import headless_page

    with headless_page(tiny_sd15_build, "index.html") as (page, _):
        page.set_default_timeout(600_000)
        page.evaluate("window.wsd.ready")
        # The same kind of run first, so the runtime's memory pool holds every size it needs.
        page.evaluate("window.wsd.generate({prompt: 'warm up', steps: 4})")
        before = page.evaluate("window.wsd.gpuBytes()")
        outcome = page.evaluate(
            """async () => {
                const run = window.wsd.generate({prompt: 'a long one', steps: 150});
                await new Promise((r) => setTimeout(r, 1500));
                window.wsd.cancel();
                try { await run; return 'finished'; } catch (e) { return e.name; }
            }"""
        )
        assert outcome == "CancelledError"
        assert page.evaluate("window.wsd.gpuBytes()") == before
        assert page.text_content("#status") == "Cancelled."
        # The page stays usable: the next generation runs.
        page.evaluate("window.wsd.generate({prompt: 'again', steps: 1})")
