"""Sample benchmark results for the report tests (test_bench_report*.py and
test_bench_charts.py).

The builders are fixtures: ``webgpu_result(robustness, **changes)`` and
``pytorch_result(precision, **changes)`` make one result each, ``full_doc`` is
the document combined from all four, and ``sample_medians`` and
``kernel_names`` are what the samples were made from. For two WebGPU builds,
``fp16_result(webgpu_result, robustness, **changes)`` makes an fp16 build's
result, ``two_builds`` holds the inputs of an fp32 and an fp16 build and
``two_doc`` their document; ``ms(result, stage)`` reads a stage's median and
``shown(ratio)`` writes a ratio as the tables do.

For the render tests (test_vae_tiles.py, test_offload_option.py,
test_memory_budget_option.py), ``stand_in_page(fields)`` puts a stand-in for the
page's ``window.wsd`` where ``wsd_web.render`` opens its headless page and
returns it: each generation gives a 1x1 image with ``fields`` over its result,
and the stand-in records the paths it was opened at (``paths``) and each
generation's options (``generated``). ``stand_in_runner(report)`` stands in
for the Node bench runner over ``tmp_path``: each run reports ``report(options)``
and its options are added to the list it returns. ``one_build_doc`` is the
document of one WebGPU result (robustness on) and PyTorch's fp32 result.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wsd_web import render as render_module
from wsd_web.bench.results import combine

#: Median ms per stage, shaped like SD 1.5 at 512x512 on an H200.
WEBGPU_MS = {
    "text_encoder_ms": 9.7,
    "unet_step_ms": 61.3,
    "scheduler_step_ms": 0.42,
    "vae_decode_ms": 88.1,
    "generation_ms": 1335.0,
}
PYTORCH_FP32_MS = {
    "text_encoder_ms": 3.1,
    "unet_step_ms": 18.2,
    "scheduler_step_ms": 0.21,
    "vae_decode_ms": 30.5,
    "generation_ms": 420.0,
}
KERNELS = [
    "fused_conv2d_add_add",
    "fused_matmul_add",
    "fused_conv2d_add",
    "softmax",
    "fused_group_norm_silu",
    "fused_matmul_add_gelu",
    "fused_layer_norm",
    "fused_conv2d1_add_add",
    "fused_matmul1_add",
    "transpose_reshape",
    "fused_group_norm1_silu",
    "fused_conv2d2_add",
    "fused_matmul2_multiply",
    "concatenate",
    "resize2d",
    "fused_conv2d3_add",
    "take",
    "fused_mean_subtract",
]
#: The fp16 build's time per stage, as a share of the fp32 build's (robustness on, off).
FP16_SPEED = {
    "text_encoder_ms": (0.62, 0.55),
    "unet_step_ms": (0.47, 0.43),
    "scheduler_step_ms": (0.9, 0.85),
    "vae_decode_ms": (0.51, 0.5),
    "generation_ms": (0.49, 0.45),
}


def _stat(median: float) -> dict[str, Any]:
    samples = [round(median * f, 4) for f in (0.98, 0.99, 1.0, 1.01, 1.03)]
    return {"median": median, "min": min(samples), "max": max(samples), "samples": samples}


def _webgpu_result(robustness: bool = True, **changes: Any) -> dict[str, Any]:
    """What ``wsd-web bench`` writes (robustness off is 20% faster here)."""
    speed = 1.0 if robustness else 0.8
    weights = [1 / (i + 1) for i in range(len(KERNELS))]
    kernel_ms = [52.0 * speed * w / sum(weights) for w in weights]
    result = {
        "runtime": "webgpu",
        "tool": "wsd-web bench",
        "kind": "sd15",
        "model": "sd15-fp32",
        "build_id": "0123abcd",
        "precision": "fp32",
        "height": 512,
        "width": 512,
        "steps": 20,
        "batch": 2,
        "adapter": "nvidia hopper NVIDIA 580.159.04",
        "features": ["subgroups", "timestamp-query", "shader-f16"],
        "robustness": robustness,
        "warmup": 3,
        "repeats": 10,
        "load_ms": 1234.5,
        "pipeline_compile_ms": 4321.0,
        "stages": {key: _stat(ms * speed) for key, ms in WEBGPU_MS.items()},
        "unet_step_gpu_ms": _stat(52.0 * speed),
        "kernels": [
            {"name": name, "calls": 1 + i % 4 * 4, "ms": ms, "share": ms / (52.0 * speed)}
            for i, (name, ms) in enumerate(zip(KERNELS, kernel_ms, strict=True))
        ],
        "peak_gpu_bytes": 3_900_000_000,
        "extra_key_from_a_newer_bench": {"ignored": True},
    }
    result.update(changes)
    return result


def _pytorch_result(precision: str = "fp32", **changes: Any) -> dict[str, Any]:
    """One entry of what ``python -m wsd_capture.bench`` writes (fp16 is 2.5x faster here)."""
    speed = 1.0 if precision == "fp32" else 0.4
    result = {
        "runtime": "pytorch",
        "tool": "python -m wsd_capture.bench",
        "kind": "sd15",
        "height": 512,
        "width": 512,
        "steps": 20,
        "batch": 2,
        "precision": precision,
        "attention": "sdpa",
        "device": "NVIDIA H200",
        "torch": "2.13.0",
        "diffusers": "0.42.0",
        "cuda": "12.8",
        "tf32": {"matmul": False, "cudnn": True},
        "scheduler": "PNDMScheduler",
        "warmup": 3,
        "repeats": 10,
        "stages": {key: _stat(ms * speed) for key, ms in PYTORCH_FP32_MS.items()},
        "peak_gpu_bytes": 5_100_000_000,
    }
    result.update(changes)
    return result


def _fp16_result(
    webgpu_result: Callable[..., dict[str, Any]], robustness: bool = True, **changes: Any
) -> Any:
    """What ``wsd-web bench`` writes for an fp16 build of the same model (faster, and with
    its own kernels) on the same machine."""
    fp32 = webgpu_result(robustness)
    stages = {
        key: {**stat, "median": stat["median"] * FP16_SPEED[key][0 if robustness else 1]}
        for key, stat in fp32["stages"].items()
    }
    kernels = [{**k, "name": f"{k['name']}_f16", "ms": k["ms"] / 2} for k in fp32["kernels"]]
    result = webgpu_result(
        robustness,
        model="sd15-fp16",
        build_id="4567cdef",
        precision="fp16",
        features=["shader-f16", "subgroups", "timestamp-query"],
        dawn_toggles=["enable-dawn-features=vulkan_enable_f16_on_nvidia"],
        stages=stages,
        kernels=kernels,
    )
    result.update(changes)
    return result


def _ms(result: dict[str, Any], stage: str) -> float:
    return float(result["stages"][f"{stage}_ms"]["median"])


def _shown(ratio: float) -> str:
    """A ratio as the tables show it."""
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


@pytest.fixture
def webgpu_result() -> Callable[..., dict[str, Any]]:
    return _webgpu_result


@pytest.fixture
def pytorch_result() -> Callable[..., dict[str, Any]]:
    return _pytorch_result


@pytest.fixture
def full_doc() -> dict[str, Any]:
    return combine(
        [_webgpu_result(True), _webgpu_result(False)],
        [_pytorch_result("fp32"), _pytorch_result("fp16")],
        command="wsd-web bench build/sd15-fp32 > webgpu.json",
        machine="1x NVIDIA H200, 16 vCPU",
    )


@pytest.fixture
def sample_medians() -> tuple[dict[str, float], dict[str, float]]:
    """The WebGPU and the PyTorch fp32 medians (ms) per stage."""
    return WEBGPU_MS, PYTORCH_FP32_MS


@pytest.fixture
def kernel_names() -> list[str]:
    """The WebGPU result's kernels, longest first."""
    return list(KERNELS)


@pytest.fixture
def fp16_result() -> Callable[..., Any]:
    return _fp16_result


@pytest.fixture
def two_builds() -> dict[str, Any]:
    """The inputs of an fp32 and an fp16 build, robustness on and off, and PyTorch's."""
    return {
        "fp32": _webgpu_result(True),
        "fp32_off": _webgpu_result(False),
        "fp16": _fp16_result(_webgpu_result, True),
        "fp16_off": _fp16_result(_webgpu_result, False),
        "pytorch_fp32": _pytorch_result("fp32"),
        "pytorch_fp16": _pytorch_result("fp16"),
    }


@pytest.fixture
def two_doc(two_builds: dict[str, Any]) -> dict[str, Any]:
    """The document of `two_builds`, the fp16 build given first."""
    b = two_builds
    return combine(
        [b["fp16"], b["fp16_off"], b["fp32_off"], b["fp32"]],
        [b["pytorch_fp16"], b["pytorch_fp32"]],
        command="bash scripts/bench_gpu.sh sd15 sd15-512 OUT 20 BUILD BUILD",
        machine="1x NVIDIA H200, 16 vCPU",
    )


@pytest.fixture
def one_build_doc() -> dict[str, Any]:
    """The document of one WebGPU result (robustness on) and PyTorch's fp32 result."""
    return combine([_webgpu_result(True)], [_pytorch_result("fp32")], command="c", machine="m")


@pytest.fixture
def ms() -> Callable[[dict[str, Any], str], float]:
    """A result's median of a stage (``unet_step``, ...), in ms."""
    return _ms


@pytest.fixture
def shown() -> Callable[[float], str]:
    return _shown


class _Page:
    """The page's ``window.wsd`` as render reads it: ready, then generate, which records the
    options and returns a 1x1 image's result with ``fields`` over it; ``paths`` are the paths
    the page was opened at."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.paths: list[str] = []
        self.generated: list[dict[str, Any]] = []

    def set_default_timeout(self, ms: float) -> None:
        pass

    def evaluate(self, script: str, options: dict[str, Any] | None = None) -> Any:
        if "ready" in script:
            return {"adapter": "fake", "kernelPath": "fp32"}
        if "gpuBytes" in script:
            return 0
        assert options is not None
        self.generated.append(options)
        rgba = base64.b64encode(bytes(4)).decode()
        result = {"rgba": rgba, "width": 1, "height": 1, "scheduler": "euler", "timings": {},
                  "latents": None, "vaeTiles": 0}  # fmt: skip
        return {**result, **self.fields}


def _stand_in(monkeypatch: pytest.MonkeyPatch, fake: _Page) -> _Page:
    """Has ``wsd_web.render`` open ``fake`` for its page (and read an empty manifest)."""

    @contextlib.contextmanager
    def headless_page(model_dir: Any, path: str) -> Iterator[tuple[_Page, list[str]]]:
        fake.paths.append(path)
        yield fake, []

    monkeypatch.setattr(render_module, "headless_page", headless_page)
    monkeypatch.setattr(render_module, "load_manifest", lambda model_dir: {})
    return fake


@pytest.fixture
def stand_in_page(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], _Page]:
    """``stand_in_page(fields)``: a stand-in page whose generations return ``fields`` too,
    put where render opens its page, and returned."""
    return lambda fields: _stand_in(monkeypatch, _Page(fields))


@pytest.fixture
def stand_in_runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], list[dict[str, Any]]]:
    """``stand_in_runner(report)``: the Node bench runner's stand-in for a build in
    ``tmp_path`` (its manifest written); each run reports ``report(options)``, and its
    options are added to the list returned."""

    def stand_in(report: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
        (tmp_path / "manifest.json").write_text("{}")
        runs: list[dict[str, Any]] = []

        def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
            options = json.loads(argv[-1])
            runs.append(options)
            return subprocess.CompletedProcess(argv, 0, json.dumps(report(options)) + "\n", "")

        monkeypatch.setattr("wsd_web.bench.runner.shutil.which", lambda name: "/usr/bin/node")
        monkeypatch.setattr("wsd_web.bench.runner.subprocess.run", run)
        return runs

    return stand_in
