"""The soak runs the tiny preset through SwiftShader, generation after generation in one
Node runner, and reports every field (a smoke test: on SwiftShader the times say nothing
about GPU speed; the GPU bytes tvmjs holds are the same accounting as on a GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench.soak import format_summary, soak_failures

REPORT_FIELDS = {
    "runtime", "tool", "kind", "model", "build_id", "precision", "kernelPath", "height", "width",
    "adapter", "features", "dawn_toggles", "node", "random_weights", "vaeTiling", "offload",
    "memoryBudget", "generations_requested", "steps", "guidance", "schedulers", "load_ms", "rows",
    "summary", "command",
}  # fmt: skip
ROW_FIELDS = {
    "index", "prompt_index", "prompt", "negative_prompt", "scheduler", "seed", "seconds",
    "allocated_after", "peak_bytes", "stage_peak_bytes", "vae_tiles", "offload", "error",
}  # fmt: skip
SUMMARY_FIELDS = {
    "generations", "allocated_after_first", "allocated_after_last", "max_allocated_after",
    "growth_bytes", "allocated_after_first_cycle", "growth_after_first_cycle_bytes",
    "tolerance_bytes", "grew", "errors", "median_seconds", "max_peak_bytes", "passed",
    "allocated_after_load", "allocated_after_release",
}  # fmt: skip
#: PNDM first: it holds the most latents at once, so the VM's pool reaches its high-water
#: mark in the first generation (in the page's order, where PNDM comes third, the pool
#: grows by one buffer when it first runs: the soak reports that as growth).
SCHEDULERS = ("pndm", "dpmpp-2m", "dpmpp-2m-karras", "euler", "euler-a", "lcm")


def _soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsd_web", "soak", *args],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


@pytest.mark.dawn
def test_soak_varies_prompts_and_schedulers_and_memory_returns(
    tiny_sd15_build: Path, tmp_path: Path
) -> None:
    out = tmp_path / "soak.json"
    result = _soak(
        str(tiny_sd15_build), "--swiftshader", "--generations", "6", "--steps", "2",
        "--schedulers", ",".join(SCHEDULERS), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) == REPORT_FIELDS
    manifest = json.loads((tiny_sd15_build / "manifest.json").read_text())
    assert (report["tool"], report["kind"], report["build_id"]) == (
        "wsd-web soak", "sd15", manifest["build_id"],
    )  # fmt: skip
    assert "SwiftShader" in report["adapter"]
    assert report["command"].startswith("wsd-web soak ") and "--generations 6" in report["command"]
    assert (report["generations_requested"], report["steps"]) == (6, 2)
    assert report["schedulers"] == list(SCHEDULERS)

    rows = report["rows"]
    assert [r["index"] for r in rows] == list(range(6))
    for r in rows:
        assert set(r) == ROW_FIELDS
        assert r["error"] is None and r["seconds"] > 0
        assert r["peak_bytes"] == max(r["stage_peak_bytes"].values())
        assert r["allocated_after"] <= r["peak_bytes"]
    # Every scheduler, a prompt each (the empty one included), a new seed each.
    assert [r["scheduler"] for r in rows] == list(SCHEDULERS)
    assert len({r["prompt"] for r in rows}) == 6 and "" in {r["prompt"] for r in rows}
    assert "" in {r["negative_prompt"] for r in rows}
    assert len({r["seed"] for r in rows}) == 6

    summary = report["summary"]
    assert set(summary) == SUMMARY_FIELDS
    assert summary["errors"] == [] and summary["generations"] == 6
    assert summary["growth_bytes"] == 0 and summary["passed"] is True
    assert summary["allocated_after_first"] == rows[0]["allocated_after"]
    assert summary["allocated_after_last"] == rows[-1]["allocated_after"]
    assert summary["max_allocated_after"] == max(r["allocated_after"] for r in rows)
    # Every component's weights but the VAE encoder's, which image to image uploads on demand.
    components = manifest["components"]
    weights = sum(c["param_bytes"] for name, c in components.items() if name != "vae_encode")
    assert summary["allocated_after_load"] >= weights
    # Freeing the VM's pooled buffers leaves the weights (and what the runtime keeps once).
    loaded, released = summary["allocated_after_load"], summary["allocated_after_release"]
    assert loaded <= released < summary["allocated_after_last"]
    assert summary["median_seconds"] > 0

    for line in ("allocated after first", "allocated after last", "growth", "s/generation"):
        assert line in result.stdout
    assert "errors                 none" in result.stdout and "passed" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generations", "0"], "wsd-web: generations must be at least 1, not 0"),
        (["--steps", "-2"], "wsd-web: steps must be at least 1, not -2"),
        (["--tolerance-bytes", "-1"], "wsd-web: tolerance bytes must be at least 0, not -1"),
        (["--seed", "-3"], "wsd-web: seed must be at least 0, not -3"),
        (
            ["--schedulers", "pndm,heun"],
            "wsd-web: schedulers heun: choose from ddim, dpmpp-2m, dpmpp-2m-karras, euler, "
            "euler-a, lcm, pndm",
        ),
    ],
)
def test_a_wrong_option_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Checked before anything runs (the directory need not even hold a build)."""
    result = _soak(str(tmp_path), "--swiftshader", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]
    assert result.stdout == ""


def test_a_directory_without_a_build_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = _soak(str(tmp_path), "--swiftshader")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"wsd-web: {tmp_path} has no manifest.json: give a directory written by wsd-compile"
    ]


def _report(allocated: list[int], error: str | None = None) -> dict[str, Any]:
    """A report as the runner writes it, of generations that left these bytes allocated."""
    grew = [
        {"index": i, "scheduler": "pndm", "prompt_index": i, "bytes": b - a}
        for i, (a, b) in enumerate(pairwise(allocated), 1)
        if b > a
    ]
    return {
        "model": "tiny", "kind": "sd15", "height": 64, "width": 64, "precision": "fp32",
        "kernelPath": "fp32", "adapter": "a GPU", "generations_requested": 100, "steps": 20,
        "schedulers": ["dpmpp-2m", "pndm"],
        "summary": {
            "generations": len(allocated), "allocated_after_first": allocated[0],
            "allocated_after_last": allocated[-1], "max_allocated_after": max(allocated),
            "growth_bytes": allocated[-1] - allocated[0], "tolerance_bytes": 0, "grew": grew,
            "growth_after_first_cycle_bytes": allocated[-1] - allocated[1],
            "errors": [] if error is None else [{"index": 3, "scheduler": "lcm", "error": error}],
            "median_seconds": 2.5,
        },
    }  # fmt: skip


def test_a_failed_soak_says_why_in_its_summary() -> None:
    passed = _report([100, 100, 100])
    assert soak_failures(passed) == []
    assert format_summary(passed).splitlines()[-1] == "  passed"
    grew = _report([100, 4196, 4196])
    assert soak_failures(grew) == [
        "GPU memory held after a generation grew by 4,096 bytes from the first to the last "
        "(tolerance 0): after generation 1 (pndm) +4,096; after the first cycle of schedulers +0"
    ]
    summary = format_summary(grew)
    assert "growth                 +4,096 bytes (tolerance 0)" in summary
    assert summary.splitlines()[-1] == "  FAILED"
    failed = _report([100, 100, 100], error="device lost")
    assert soak_failures(failed) == ["generation 3 (lcm) failed: device lost"]
    assert "errors                 generation 3: device lost" in format_summary(failed)
