"""scripts/probe_fma.py on WebGPU (Node + Dawn on SwiftShader): the FMA chains of
the f32 types run, and their outputs agree with numpy on the probe's inputs (the
f16 types need ``shader-f16``, which SwiftShader lacks: they are refused with the
reason, the other kernels still timed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .conftest import load_script
from .kernel_probe import checksum, probe_inputs, run_probe_kernels

probe = load_script("probe_fma")


def _reference(wgsl_type: str, threads: int, iterations: int) -> np.ndarray[Any, Any]:
    """Each thread's sum of its chains' lanes, in float64 (the probe's FMAs round in f32)."""
    _, lanes = probe.TYPES[wgsl_type]
    x = probe_inputs(probe.INPUTS, 1).astype(np.float64)  # binding 0's inputs (seed 1 + binding)
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
    rows = run_probe_kernels(specs, tmp_path)
    for row, wgsl_type in zip(rows[:2], types[:2], strict=True):
        assert row["ms"] > 0
        expected, scale = checksum(_reference(wgsl_type, 2 * probe.THREADS, iterations))
        assert abs(row["checksum"] - expected) < 1e-4 * scale
    assert "f16" in rows[2]["error"]
