"""`python -m wsd_capture.bench`: diffusers' work per generation, timed stage by stage.

The runs here are on the CPU with the tiny presets; what is checked is the
record's shape and sanity, never a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from wsd_capture.bench import NEGATIVE_PROMPT, PROMPT, STAGES, Generation, summarize
from wsd_capture.bench.cli import main
from wsd_capture.presets import build_tiny_sd15, build_tiny_sdxl

SRC = Path(__file__).resolve().parents[1] / "src"
REPO = Path(__file__).resolve().parents[3]
RECORD_KEYS = {
    "runtime",
    "tool",
    "kind",
    "height",
    "width",
    "steps",
    "batch",
    "precision",
    "attention",
    "device",
    "torch",
    "diffusers",
    "cuda",
    "tf32",
    "scheduler",
    "warmup",
    "repeats",
    "stages",
    "peak_gpu_bytes",
}


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as the GPU machine runs it: from the source tree, not installed."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "wsd_capture.bench", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _records(tmp_path: Path, kind: str, *precisions: str) -> list[dict[str, Any]]:
    out = tmp_path / "bench.json"
    quick = ["--steps", "2", "--warmup", "1", "--repeats", "2", "--device", "cpu"]
    result = _bench("--kind", kind, *quick, "--precision", *precisions, "--json", str(out))
    assert result.returncode == 0, result.stderr
    for name in STAGES:
        assert name in result.stdout
    records: list[dict[str, Any]] = json.loads(out.read_text())
    return records


def _check_record(record: dict[str, Any], kind: str, precision: str, scheduler: str) -> None:
    assert set(record) == RECORD_KEYS
    assert record["runtime"] == "pytorch"
    assert record["tool"] == "python -m wsd_capture.bench"
    assert (record["kind"], record["precision"], record["scheduler"]) == (
        kind,
        precision,
        scheduler,
    )
    assert (record["height"], record["width"], record["steps"], record["batch"]) == (64, 64, 2, 2)
    assert (record["attention"], record["device"]) == ("sdpa", "cpu")
    assert (record["torch"], record["cuda"]) == (torch.__version__, torch.version.cuda)
    assert record["diffusers"].count(".") >= 2
    assert set(record["tf32"]) == {"matmul", "cudnn"}
    assert all(isinstance(v, bool) for v in record["tf32"].values())
    assert (record["warmup"], record["repeats"]) == (1, 2)
    assert list(record["stages"]) == list(STAGES)
    for name, stage in record["stages"].items():
        assert set(stage) == {"median", "min", "max", "samples"}, name
        assert len(stage["samples"]) == 2, name
        assert 0 < stage["min"] <= stage["median"] <= stage["max"], name
        assert (min(stage["samples"]), max(stage["samples"])) == (stage["min"], stage["max"])
    assert record["peak_gpu_bytes"] is None


def test_tiny_sd15_on_the_cpu_gives_a_complete_record(tmp_path: Path) -> None:
    (record,) = _records(tmp_path, "tiny-sd15", "fp32")
    _check_record(record, "tiny-sd15", "fp32", "PNDMScheduler")


def test_tiny_sdxl_gives_one_record_per_precision_in_order(tmp_path: Path) -> None:
    records = _records(tmp_path, "tiny-sdxl", "fp32", "fp16")
    assert [r["precision"] for r in records] == ["fp32", "fp16"]
    for record in records:
        _check_record(record, "tiny-sdxl", record["precision"], "EulerDiscreteScheduler")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line_and_exit_1() -> None:
    result = _bench("--kind", "tiny-sd15", "--device", "cuda")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("python -m wsd_capture.bench: CUDA is not available: ")
    assert "--device cpu" in lines[0]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_an_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["--kind", "sd3", "--device", "cpu"], capsys)
    assert "invalid choice: 'sd3'" in line


def test_a_size_the_model_cannot_take_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _usage_error(["--kind", "tiny-sd15", "--height", "50", "--device", "cpu"], capsys)
    assert "height 50 is not supported: use a positive multiple of 16" in line


def test_sdxl_sizes_are_checked_against_its_published_configs_before_building(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _usage_error(["--kind", "sdxl", "--width", "1000", "--device", "cpu"], capsys)
    assert "width 1000 is not supported: use a positive multiple of 32" in line
    assert "native is 1024" in line


def test_a_model_directory_needs_a_full_size_kind(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--kind", "tiny-sd15", "--model-dir", "m", "--device", "cpu"]
    assert "--model-dir needs --kind sd15 or --kind sdxl" in _usage_error(argv, capsys)


def test_a_model_directory_is_loaded_instead_of_built(
    preset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    quick = ["--steps", "1", "--warmup", "0", "--repeats", "1", "--precision", "fp32"]
    argv = ["--kind", "sd15", "--model-dir", str(preset_dir), "--device", "cpu", *quick]
    assert main([*argv, "--json", str(out)]) == 0
    (record,) = json.loads(out.read_text())
    assert (record["kind"], record["height"], record["scheduler"]) == ("sd15", 64, "PNDMScheduler")
    assert "generation_ms" in capsys.readouterr().out


def test_a_model_directory_of_the_other_kind_is_one_line_and_exit_1(
    preset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--kind", "sdxl", "--model-dir", str(preset_dir), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"python -m wsd_capture.bench: {preset_dir} holds a StableDiffusionPipeline: "
        "use --kind sd15\n"
    )


@pytest.mark.parametrize("build", [build_tiny_sd15, build_tiny_sdxl])
def test_the_timed_generation_is_the_generation_diffusers_runs(build: Any) -> None:
    pipe = build()
    pipe.set_progress_bar_config(disable=True)
    reference = pipe(
        PROMPT,
        negative_prompt=NEGATIVE_PROMPT,
        num_inference_steps=4,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(3),
        output_type="pt",
    ).images
    gen = Generation(pipe, device=torch.device("cpu"), precision="fp32", steps=4, seed=3)
    with torch.inference_mode():
        image = gen.generate()
    torch.testing.assert_close(image, reference, rtol=0, atol=1e-6)


def test_summarize_reports_median_min_max_and_the_samples() -> None:
    assert summarize([3.0, 1.0, 2.0]) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "samples": [3.0, 1.0, 2.0],
    }
    assert summarize([4, 1, 2, 3])["median"] == 2.5
    assert summarize([0.5]) == {"median": 0.5, "min": 0.5, "max": 0.5, "samples": [0.5]}


def test_summarize_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def test_measure_compile_still_starts() -> None:
    script = REPO / "scripts" / "measure_compile.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--kind {sd15,sdxl}" in result.stdout
