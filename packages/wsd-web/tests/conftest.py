"""Sample benchmark results for the report tests (test_bench_report*.py).

The builders are fixtures: ``webgpu_result(robustness, **changes)`` and
``pytorch_result(precision, **changes)`` make one result each, ``full_doc`` is
the document combined from all four, and ``sample_medians`` and
``kernel_names`` are what the samples were made from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

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
