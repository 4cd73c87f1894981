"""scripts/probe_matmul.py on WebGPU (Node + Dawn on SwiftShader): two tilings of
the matmul schedule, one of them contiguous, compiled by TVM for a small product
whose sizes fill no tile, timed, agreeing with each other and with numpy."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from .conftest import load_script
from .kernel_probe import checksum, probe_inputs, run_probe_kernels

probe = load_script("probe_matmul")


def test_tilings_are_timed_and_agree_with_numpy(tmp_path: Path) -> None:
    shape = (2, 40, 72, 48)
    specs = [
        probe.kernel_spec(shape, "float32", probe.parse_tiles(text))
        for text in ("16,16,4,4,16", "8,8,4,4,16,contiguous")
    ]
    assert specs[0]["grid"] == [2, 2, 1]  # 64 x 64 tiles: 72 columns in 2, 2 batches x 1 row tile
    rows = run_probe_kernels(specs, tmp_path)
    s, i, j, k = shape
    a = probe_inputs(s * i * k, 1).reshape(s, i, k).astype(np.float64)
    b = probe_inputs(s * j * k, 2).reshape(s, j, k).astype(np.float64)
    expected, scale = checksum(a @ b.transpose(0, 2, 1))
    for row in rows:
        assert row["ms"] > 0 and row["max_diff_from_first"] < 1e-5
        assert abs(row["checksum"] - expected) < 1e-5 * scale


def test_shapes_and_tiles_are_read_from_the_command_line() -> None:
    assert probe.parse_shape("1,640,8192,2880") == (1, 640, 8192, 2880)
    tiles = probe.parse_tiles("16,8,8,4,16,contiguous")
    assert (tiles.block_x, tiles.block_y, tiles.micro_x, tiles.micro_y) == (16, 8, 8, 4)
    assert tiles.micro_k == 16 and tiles.contiguous
    with pytest.raises(argparse.ArgumentTypeError, match="S,I,J,K"):
        probe.parse_shape("1,640,0,2880")
    with pytest.raises(argparse.ArgumentTypeError, match="BX,BY,MX,MY,MK"):
        probe.parse_tiles("16,16,4,4")
