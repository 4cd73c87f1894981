"""The benchmark runs on the tiny preset through SwiftShader and reports every
field (a smoke test: SwiftShader timings say nothing about GPU speed, so no
timing is asserted beyond being a positive number)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench.runner import STAGES

pytestmark = pytest.mark.dawn

FIELDS = {
    "runtime", "tool", "kind", "model", "build_id", "precision", "height", "width", "steps",
    "batch", "scheduler", "adapter", "features", "robustness", "random_weights", "warmup",
    "repeats", "load_ms", "pipeline_compile_ms", "stages", "unet_step_gpu_ms", "kernels",
    "peak_gpu_bytes", "dawn_toggles", "kernelPath", "vaeTiling", "vaeTiles", "offload",
    "stagePeakBytes", "memoryBudget", "memoryNeedBytes", "quantize", "unet_record_ms",
    "bindings", "vae_kernels", "text_encoder_kernels",
}  # fmt: skip


def _check_stats(stats: dict[str, Any], count: int) -> None:
    assert set(stats) == {"median", "min", "max", "samples"}
    assert len(stats["samples"]) == count
    assert 0 < stats["min"] <= stats["median"] <= stats["max"]


def test_bench_reports_every_field_on_swiftshader(tiny_sd15_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "wsd_web", "bench", str(tiny_sd15_build), "--swiftshader",
            "--steps", "2", "--warmup", "1", "--repeats", "2", "--random-weights", "3",
            "--robustness", "off", "--json", str(out),
        ],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reports = json.loads(out.read_text())
    # One setting: each compiles every pipeline anew (about 100 s on SwiftShader). Robustness
    # on, the default, is what every other Dawn test runs; off adds its toggle.
    assert [r["robustness"] for r in reports] == [False]
    manifest = json.loads((tiny_sd15_build / "manifest.json").read_text())
    for report in reports:
        assert set(report) == FIELDS
        assert report["runtime"] == "webgpu"
        assert report["build_id"] == manifest["build_id"]
        assert (report["kind"], report["batch"], report["steps"]) == ("sd15", 2, 2)
        assert "SwiftShader" in report["adapter"]
        assert report["random_weights"] is True
        assert report["quantize"] == manifest["model"]["quantize"] == "none"
        assert set(report["stages"]) == set(STAGES)
        for stage in STAGES:
            _check_stats(report["stages"][stage], 2)
        assert report["pipeline_compile_ms"] > 0 and report["load_ms"] > 0
        # SwiftShader has timestamp queries: the UNet step's kernels are all there.
        assert "timestamp-query" in report["features"]
        # What every runner asks Dawn for, and this run's robustness and profiling.
        robust = [] if report["robustness"] else [",disable_robustness"]
        assert report["dawn_toggles"] == [
            "enable-dawn-features=vulkan_enable_f16_on_nvidia,allow_unsafe_apis" + "".join(robust),
            "disable-dawn-features=timestamp_quantization",
        ]
        _check_stats(report["unet_step_gpu_ms"], 2)
        # Recording a UNet call is part of its step; kept bindings were made once, then reused.
        _check_stats(report["unet_record_ms"], 2)
        assert report["unet_record_ms"]["median"] <= report["stages"]["unet_step_ms"]["max"]
        assert report["bindings"]["made"] > 0
        assert report["bindings"]["reused"] > report["bindings"]["made"]
        kernels = report["kernels"]
        assert kernels and all(k["calls"] >= 1 and k["ms"] >= 0 for k in kernels)
        assert any("conv2d" in k["name"] for k in kernels)
        assert sum(k["share"] for k in kernels) == pytest.approx(1.0)
        # ... and one whole VAE decode's, its convolutions among them.
        vae = report["vae_kernels"]
        assert any("conv2d" in k["name"] for k in vae)
        assert sum(k["share"] for k in vae) == pytest.approx(1.0)
        # ... and one prompt encoding's: the text encoder's projections among them.
        encoder = report["text_encoder_kernels"]
        assert any("matmul" in k["name"] for k in encoder)
        assert sum(k["share"] for k in encoder) == pytest.approx(1.0)
        assert report["peak_gpu_bytes"] >= manifest["components"]["unet"]["param_bytes"]
    table = result.stdout
    labels = ("UNet step", "VAE decode", "robustness off", "disable_robustness", "peak GPU")
    for label in (*labels, "text encoder GPU"):
        assert label in table


def test_bench_refuses_a_directory_without_a_build(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsd_web", "bench", str(tmp_path), "--swiftshader"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"wsd-web: {tmp_path} has no manifest.json: give a directory written by wsd-compile"
    ]
