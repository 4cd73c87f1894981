"""Fixtures shared by the cross-package tests: real builds, made once per session."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from wsd_compile import RuntimeCheck, write_runtime_check
from wsd_web.headless import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as module ``name``, registered in
    ``sys.modules`` (dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def runtime_check(tmp_path_factory: pytest.TempPathFactory) -> RuntimeCheck:
    """The runtime-check model compiled for WebGPU and linked (a real TVM build and emcc link)."""
    return write_runtime_check(tmp_path_factory.mktemp("runtime-check"))


@pytest.fixture(scope="session")
def check_dir(runtime_check: RuntimeCheck) -> Path:
    return runtime_check.directory


def _source_key() -> str:
    """A hash of everything a compiled build depends on: the code and the tool versions."""
    import hashlib
    import importlib.metadata as md

    import wsd_artifacts
    import wsd_capture
    import wsd_compile

    digest = hashlib.sha256()
    for package in (wsd_artifacts, wsd_capture, wsd_compile):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".json", ".h"}:
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    for dist in ("apache-tvm", "torch", "diffusers", "transformers"):
        digest.update(f"{dist}={md.version(dist)}".encode())
    return digest.hexdigest()[:16]


#: The tiny presets' attention chunk: ranges of queries whose scores take at most
#: 32 KiB, small enough that every attention of every tiny preset is chunked
#: (shared with ``scripts/gpu_parity.py``).
TINY_CHUNK_BYTES = 32 * 1024


def _cached_build(
    preset: str,
    *,
    fuse_all_attention: bool = False,
    chunk_all_attention: bool = False,
    precision: str = "fp32",
    quantize: str = "none",
) -> Path:
    """``preset`` compiled for WebGPU (at fp32 unless told), cached outside the repo
    by source hash.

    A fresh machine compiles it once (about a minute on 2 cores); a cached
    build is used only if ``verify`` finds every file intact. A build with the
    default kernels is made by the command line (``wsd-compile KIND --preset``),
    its JSON report kept beside it (:func:`cli_report`). With
    ``fuse_all_attention`` every attention runs as the fused kernel (builds
    fuse only attention with a large score matrix, which no tiny preset has);
    with ``chunk_all_attention`` every attention runs as two products around a
    softmax in ranges of queries whose scores take at most 32 KiB (the shader-f16
    and fp32 paths' ``attention_chunk_bytes``).
    An fp16 build holds both kernel paths (``shader-f16`` and the ``fp32`` fallback).
    ``quantize``: the weights' quantization (``int8``, ``int4``; none by default).
    """
    import fcntl
    import shutil

    from wsd_artifacts import verify
    from wsd_capture import PRESET_KINDS
    from wsd_compile import compile_pipeline
    from wsd_compile.cache import cache_root
    from wsd_compile.kernels import DEFAULT_KERNELS

    variant = "-fused" if fuse_all_attention else "-chunked" if chunk_all_attention else ""
    variant += "" if quantize == "none" else f"-{quantize}"
    out = cache_root() / "builds" / f"{preset}-{precision}{variant}-{_source_key()}"
    out.parent.mkdir(parents=True, exist_ok=True)
    # pytest-xdist's workers share the cache: one compiles a build, the others wait for it.
    with out.with_name(f"{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        by_cli = not (fuse_all_attention or chunk_all_attention)
        if out.exists() and (not verify(out).ok or (by_cli and not cli_report(out).exists())):
            shutil.rmtree(out)
        if not out.exists() and by_cli:
            _compile_with_cli(preset, out, precision, quantize)
        elif not out.exists():
            kernels = DEFAULT_KERNELS.without(fused_attention_min_bytes=0)
            if chunk_all_attention:
                kernels = kernels.without(attention_chunk_bytes=TINY_CHUNK_BYTES)
            compile_pipeline(
                PRESET_KINDS[preset],
                preset=preset,
                out_dir=out,
                precision=precision,
                kernels=kernels,
                quantize=quantize,
            )
    _prune_stale_builds(out)
    return out


def cli_report(build: Path) -> Path:
    """Where :func:`_cached_build` keeps the JSON report ``wsd-compile`` printed
    for ``build`` (beside it, so that ``verify`` sees only the build's files)."""
    return build.with_name(f"{build.name}.report.json")


def _compile_with_cli(preset: str, out: Path, precision: str, quantize: str) -> None:
    """``wsd-compile KIND --preset PRESET --out OUT ...``, its report kept."""
    import contextlib
    import io

    from wsd_capture import PRESET_KINDS
    from wsd_compile.cli import main

    argv = [PRESET_KINDS[preset], "--preset", preset, "--out", str(out)]
    argv += ["--precision", precision, "--quantize", quantize]
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        code = main(argv)
    assert code == 0, f"wsd-compile {' '.join(argv)} exited {code}"
    cli_report(out).write_text(report.getvalue())


def _prune_stale_builds(out: Path, keep: int = 3) -> None:
    """Remove the builds of ``out``'s preset and variant made from older sources,
    keeping the ``keep`` most recently made (``out`` among them, and any another
    checkout may be using): each source change would otherwise leave one behind."""
    import re
    import shutil

    prefix = out.name[: -len(_source_key())]
    pattern = re.compile(re.escape(prefix) + "[0-9a-f]{16}")
    builds = [p for p in out.parent.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
    builds.sort(key=lambda p: (p != out, -p.stat().st_mtime))
    for stale in builds[keep:]:
        shutil.rmtree(stale, ignore_errors=True)
        stale.with_name(f"{stale.name}.lock").unlink(missing_ok=True)
        cli_report(stale).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def tiny_sd15_build() -> Path:
    return _cached_build("tiny-sd15")


@pytest.fixture(scope="session")
def tiny_sd15_fused_build() -> Path:
    return _cached_build("tiny-sd15", fuse_all_attention=True)


@pytest.fixture(scope="session")
def tiny_sd15_chunked_build() -> Path:
    return _cached_build("tiny-sd15", chunk_all_attention=True)


@pytest.fixture(scope="session")
def tiny_sd15_fp16_build() -> Path:
    return _cached_build("tiny-sd15", precision="fp16")


@pytest.fixture(scope="session")
def tiny_sd15_int8_build() -> Path:
    return _cached_build("tiny-sd15", quantize="int8")


@pytest.fixture(scope="session")
def tiny_sd15_int4_build() -> Path:
    return _cached_build("tiny-sd15", quantize="int4")


@pytest.fixture(scope="session")
def tiny_sd15_v_build() -> Path:
    return _cached_build("tiny-sd15-v")


@pytest.fixture(scope="session")
def tiny_sdxl_build() -> Path:
    return _cached_build("tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_sd15_inpaint_build() -> Path:
    return _cached_build("tiny-sd15-inpaint")


@pytest.fixture(scope="session")
def tiny_sdxl_inpaint_build() -> Path:
    return _cached_build("tiny-sdxl-inpaint")


#: Registry names of the page's schedulers -> diffusers class and from_config overrides.
SCHEDULER_CLASSES: dict[str, tuple[str, dict[str, Any]]] = {
    "pndm": ("PNDMScheduler", {}),
    "dpmpp-2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp-2m-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}

#: diffusers' 8-bit image [H, W, 3] and final latents for a run (prompt,
#: negative_prompt, seed, steps, scheduler, optional guidance).
Reference = Callable[[dict[str, Any]], tuple[np.ndarray, np.ndarray]]
PSNR = Callable[[np.ndarray, np.ndarray], float]


@pytest.fixture(scope="session")
def scheduler_classes() -> dict[str, tuple[str, dict[str, Any]]]:
    return SCHEDULER_CLASSES


@pytest.fixture(scope="session")
def psnr() -> PSNR:
    """PSNR in dB between two 8-bit images."""

    def compute(a: np.ndarray, b: np.ndarray) -> float:
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))

    return compute


def _reference(
    preset: str, directory: Path, quantize: str = "none", precision: str = "fp32"
) -> Reference:
    """diffusers itself on a preset, loaded as a user would (default attention).

    ``quantize``: the UNet's and text encoders' weights replaced by their
    quantized-then-dequantized values (``wsd_capture.quantized``), as a build
    with that quantization and ``precision`` holds them (the model itself runs
    in float32).

    SDXL runs take ``original_size``, ``crops_coords_top_left`` and
    ``target_size`` too; an empty negative prompt is ``negative_prompt=None``.
    """
    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from wsd_capture import PRESET_KINDS, write_preset

    model_dir = write_preset(preset, directory / preset)
    xl = PRESET_KINDS[preset] == "sdxl"
    if xl:
        pipe = StableDiffusionXLPipeline.from_pretrained(model_dir, add_watermarker=False)
    else:
        pipe = StableDiffusionPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    if quantize != "none":
        from wsd_artifacts.quantization import SCHEMES
        from wsd_capture.quantized import quantize_torch_model

        for name in ("unet", "text_encoder", "text_encoder_2"):
            model = getattr(pipe, name, None)
            if model is not None:
                quantize_torch_model(model, SCHEMES[quantize], build_precision=precision)
    own = pipe.scheduler.config

    def run(options: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        class_name, overrides = SCHEDULER_CLASSES[options["scheduler"]]
        pipe.scheduler = getattr(diffusers, class_name).from_config(own, **overrides)
        kwargs = {
            "prompt": options["prompt"],
            "negative_prompt": options.get("negative_prompt") or None,
            "num_inference_steps": options["steps"],
            "guidance_scale": options.get("guidance", 7.5),
        }
        if xl:
            for key in ("original_size", "crops_coords_top_left", "target_size"):
                if options.get(key) is not None:
                    kwargs[key] = tuple(options[key])
        seed = options["seed"]
        latents = pipe(
            **kwargs, generator=torch.Generator().manual_seed(seed), output_type="latent"
        ).images
        image = pipe(**kwargs, generator=torch.Generator().manual_seed(seed), output_type="np")
        pixels = (image.images[0] * 255).round().astype(np.uint8)
        return pixels, latents.numpy()

    return run


@pytest.fixture(scope="session")
def diffusers_reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference("tiny-sd15", tmp_path_factory.mktemp("preset"))


@pytest.fixture(scope="session")
def diffusers_reference_int8(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference("tiny-sd15", tmp_path_factory.mktemp("preset-int8"), quantize="int8")


@pytest.fixture(scope="session")
def diffusers_reference_int4(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference("tiny-sd15", tmp_path_factory.mktemp("preset-int4"), quantize="int4")


@pytest.fixture(scope="session")
def diffusers_reference_xl(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference("tiny-sdxl", tmp_path_factory.mktemp("preset-xl"))


@pytest.fixture(scope="session")
def diffusers_reference_v(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    return _reference("tiny-sd15-v", tmp_path_factory.mktemp("preset-v"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium with WebGPU (SwiftShader without a GPU), one per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        yield b
        b.close()


@pytest.fixture(scope="session")
def editing_results(request: pytest.FixtureRequest) -> Callable[[str], dict[Any, Any]]:
    """Each preset's image-to-image and inpainting generations (tests/editing.py's
    plan) through the page's pipelines in Node, made once per preset in one
    loaded model: loading a build on SwiftShader is the slow part."""
    from .editing import build_fixture, editing_plan, node_generate, start_image

    done: dict[str, dict[Any, Any]] = {}

    def results(preset: str) -> dict[Any, Any]:
        if preset not in done:
            build: Path = request.getfixturevalue(build_fixture(preset))
            plan = editing_plan(preset)
            made = node_generate(build, [v for _, v in plan], image=start_image(64))
            done[preset] = dict(zip([k for k, _ in plan], made, strict=True))
        return done[preset]

    return results


@pytest.fixture(scope="session")
def editing_references(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], Any]:
    """diffusers' editing pipeline (``img2img`` or ``inpaint``) on a preset, made once each."""
    from .editing import diffusers_reference

    made: dict[tuple[str, str], Any] = {}

    def reference(preset: str, task: str) -> Any:
        if (preset, task) not in made:
            directory = tmp_path_factory.mktemp(f"{task}-{preset}")
            made[preset, task] = diffusers_reference(preset, directory, SCHEDULER_CLASSES, task)
        return made[preset, task]

    return reference
