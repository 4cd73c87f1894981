"""scripts/probe_fma.py on WebGPU (Node + Dawn on SwiftShader): the FMA chains of
the f32 types run, and their outputs agree with numpy on the probe's inputs (the
f16 types need ``shader-f16``, which SwiftShader lacks: they are refused with the
reason, the other kernels still timed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from wsd_web.bench.runner import swiftshader_environment

from .conftest import load_script
from .test_probe_attention import WEB, _inputs

probe = load_script("probe_fma")


def _reference(wgsl_type: str, threads: int, iterations: int) -> np.ndarray[Any, Any]:
    """Each thread's sum of its chains' lanes, in float64 (the probe's FMAs round in f32)."""
    _, lanes = probe.TYPES[wgsl_type]
    x = _inputs(probe.INPUTS, 1).astype(np.float64)  # binding 0's inputs (seed 1 + binding)
    i = np.arange(threads)[:, None] + np.arange(lanes)[None, :]

    def at(offset: int) -> np.ndarray[Any, Any]:
        return x[(i + offset) % probe.INPUTS]

    b, c = at(1) / 2, at(2) / 4
    total = np.zeros_like(b)
    for n in range(probe.CHAINS):
        a = at(3 + n)
        for _ in range(iterations):
            a = a * b + c
        total += a
    return total.sum(axis=1)


def test_f32_chains_agree_with_numpy_and_f16_is_refused_without_the_feature(
    tmp_path: Path,
) -> None:
    # Few steps: the chains converge (|b| <= 1/2), so that after many a miscounted
    # step would no longer show in the output.
    iterations, types = 3, ["f32", "vec4<f32>", "vec2<f16>"]
    specs = [probe.kernel_spec(t, iterations, workgroups=2) for t in types]
    assert specs[1]["fmas"] == 2 * probe.THREADS * iterations * probe.CHAINS * 4
    kernels = tmp_path / "kernels.json"
    kernels.write_text(json.dumps(specs))
    done = subprocess.run(
        ["node", "src/wsd_web/node/probe_kernels.mjs", str(kernels), "2"],
        cwd=WEB,
        env={**swiftshader_environment(), "WARM_MS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout.splitlines()[-1])["kernels"]
    assert [r["name"] for r in rows] == ["fma-f32", "fma-vec4-f32", "fma-vec2-f16"]
    for row, wgsl_type in zip(rows[:2], types[:2], strict=True):
        assert row["ms"] > 0
        expected = _reference(wgsl_type, 2 * probe.THREADS, iterations)
        weights = 1 + np.arange(expected.size) % 7
        assert abs(row["checksum"] - float(expected @ weights)) < 1e-4 * weights.sum()
    assert "f16" in rows[2]["error"]
