"""scripts/probe_attention.py and node/probe_kernels.mjs, the attention tiles probe,
on WebGPU (Node + Dawn on SwiftShader): two tilings of a small attention compiled
by TVM, timed, agreeing with each other and with numpy on the probe's inputs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wsd_compile.kernels import AttentionTiles

from .conftest import load_script
from .kernel_probe import checksum, probe_inputs, run_probe_kernels

probe = load_script("probe_attention")


def _reference(spec: dict[str, Any]) -> np.ndarray[Any, Any]:
    batch, _, _, depth, heads = probe.SHAPES["small"]
    x = {
        b["name"].removesuffix("_ptr"): probe_inputs(b["elements"], 1 + b["binding"])
        for b in spec["buffers"]
        if b["kind"] == "storage"
    }
    split = {  # [n, tokens, heads x depth] -> [n, heads, tokens, depth]
        k: x[k].reshape(batch // heads, -1, heads, depth).transpose(0, 2, 1, 3).astype(np.float64)
        for k in "qkv"
    }
    scores = split["q"] @ split["k"].transpose(0, 1, 3, 2) * depth**-0.5
    p = np.exp(scores - scores.max(-1, keepdims=True))
    out = (p / p.sum(-1, keepdims=True)) @ split["v"]
    return out.transpose(0, 2, 1, 3).reshape(-1)


def test_tilings_are_timed_and_agree_with_numpy(tmp_path: Path) -> None:
    specs = [
        probe.kernel_spec("small", "float32", None, ""),
        probe.kernel_spec("small", "float32", AttentionTiles(32, 2, 16, 64), "other-"),
    ]
    rows = run_probe_kernels(specs, tmp_path)
    assert [r["group"] for r in rows] == ["small-float32"] * 2
    expected, scale = checksum(_reference(specs[0]))
    for row in rows:
        assert row["ms"] > 0 and row["min_ms"] <= row["ms"]
        assert row["max_diff_from_first"] < 1e-5
        assert abs(row["checksum"] - expected) < 1e-5 * scale


def test_a_tiling_is_read_from_the_command_line() -> None:
    assert probe.parse_tiling("64,4,8,32,scalar") == (64, 4, 8, 32, False)
    assert probe.parse_tiling("32,4,32,32,vec4") == (32, 4, 32, 32, True)
    for wrong in ("64,4,8,scalar", "64,4,8,32,half", "64,4,x,32,vec4"):
        with pytest.raises(argparse.ArgumentTypeError, match="ROWS,PER_THREAD,THREADS_X"):
            probe.parse_tiling(wrong)
