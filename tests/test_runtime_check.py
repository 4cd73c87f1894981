"""The compiled runtime-check model runs on WebGPU and matches torch.

Proof that the toolchain works end to end: a Relax module with a matmul +
SiLU and a conv2d + group norm, compiled by TVM for WebGPU with a wasm32
host, linked with wsd's own tvmjs runtime build, its weights loaded from a
tensor cache written by wsd-artifacts, run (a) in headless Chromium (WebGPU
on SwiftShader) served by wsd-web's HTTP server and (b) in Node with Dawn,
and compared with torch's CPU result on the same tensors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsd_artifacts import read_tensor_cache, write_tensor_cache
from wsd_compile import RuntimeCheck, write_runtime_check
from wsd_compile.kernels import DEFAULT_KERNELS, DEFAULT_TILES, MatmulTiles
from wsd_web.bench.runner import swiftshader_environment
from wsd_web.cli import main as wsd_web_main
from wsd_web.headless import run_check

NODE_RUNNER = Path(__file__).parents[1] / "packages/wsd-web/src/wsd_web/node/check.mjs"
FP32_TOLERANCE = 1e-4


def torch_reference(check_dir: Path) -> dict[str, np.ndarray]:
    """The check functions computed by torch on the CPU, independently of the build."""
    t = {k: torch.from_numpy(v) for k, v in read_tensor_cache(check_dir).items()}
    matmul = F.silu(t["x"] @ t["fc.weight"] + t["fc.bias"])
    conv = F.conv2d(t["image"], t["conv.weight"], t["conv.bias"], padding=1)
    norm = F.group_norm(conv, 4, t["norm.weight"], t["norm.bias"], eps=1e-5)
    scores = t["q"] @ t["k"].transpose(1, 2) * t["q"].shape[-1] ** -0.5
    attention = torch.softmax(scores, dim=-1) @ t["v"]
    n, queries, width = t["xq"].shape
    q, k, v = (t[x].unflatten(-1, (2, width // 2)).transpose(1, 2) for x in ("xq", "xk", "xv"))
    heads = torch.softmax(q @ k.transpose(-1, -2) * (width // 2) ** -0.5, dim=-1) @ v
    return {
        "matmul_silu": matmul.numpy(),
        "conv_group_norm": norm.numpy(),
        "attention": attention.numpy(),
        "attention_heads": heads.transpose(1, 2).reshape(n, queries, width).numpy(),
    }


def assert_matches_torch(result: dict[str, Any], check_dir: Path) -> dict[str, float]:
    reference = torch_reference(check_dir)
    assert [fn["name"] for fn in result["functions"]] == list(reference)
    errors = {}
    for fn in result["functions"]:
        got = np.asarray(fn["output"], dtype="float32").reshape(fn["shape"])
        want = reference[fn["name"]]
        assert got.shape == want.shape
        errors[fn["name"]] = float(np.abs(got - want).max())
        assert errors[fn["name"]] <= FP32_TOLERANCE, (fn["name"], errors[fn["name"]])
        assert fn["maxAbsError"] <= FP32_TOLERANCE  # the page's own comparison with numpy
        assert np.abs(want).max() > 0.5  # not a trivially small output
    return errors


@pytest.mark.browser
def test_headless_chromium_webgpu_matches_torch(check_dir: Path) -> None:
    result = run_check(check_dir)
    assert "SwiftShader" in result["adapter"] or result["adapter"]
    print("chromium max abs error:", assert_matches_torch(result, check_dir))


def _run_in_dawn(check_dir: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if not env.get("VK_ICD_FILENAMES") and not env.get("VK_DRIVER_FILES"):
        env = swiftshader_environment(env)
    proc = subprocess.run(
        ["node", str(NODE_RUNNER), str(check_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.dawn
def test_node_dawn_webgpu_matches_torch(check_dir: Path) -> None:
    result = _run_in_dawn(check_dir)
    print("dawn max abs error:", assert_matches_torch(result, check_dir))


#: A workgroup tile stored as vectors of 4: what TVM declares where every read and
#: write of a ``*_shared`` array is one.
VECTOR_TILE = re.compile(rb"var<workgroup> \w+_shared : array<vec4<f32>, \d+>")


@pytest.mark.dawn
@pytest.mark.parametrize(
    "tiles",
    [
        DEFAULT_TILES,
        replace(DEFAULT_TILES, micro_x=8, micro_y=8),
        replace(DEFAULT_TILES, micro_x=4, micro_y=8),
        replace(DEFAULT_TILES, block_x=8, block_y=8, micro_x=8, micro_y=8),
    ],
    ids=["t16-r4x4", "t16-r8x8", "t16-r8x4", "t8-r8x8"],
)
def test_matmuls_of_neighbouring_outputs_match_torch(
    tiles: MatmulTiles, tmp_path: Path, runtime_check: RuntimeCheck
) -> None:
    """Products read contiguously (each thread owning micro_y x micro_x
    neighbouring outputs, read as vectors of 4 from k-major workgroup tiles),
    with the tiles the contiguous table uses, give the check's numbers in Dawn."""
    tiles = replace(tiles, contiguous=True)
    kernels = DEFAULT_KERNELS.without(tiles=tiles, table=())
    check = write_runtime_check(tmp_path / "check", kernels=kernels)
    assert VECTOR_TILE.search(check.build.wasm.path.read_bytes())
    assert not VECTOR_TILE.search(runtime_check.build.wasm.path.read_bytes())
    result = _run_in_dawn(check.directory)
    print("dawn max abs error:", assert_matches_torch(result, check.directory))


@pytest.mark.browser
def test_wsd_web_check_reports_and_passes(
    check_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wsd_web_main(["check", str(check_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {fn["name"] for fn in summary["functions"]} == {
        "matmul_silu",
        "conv_group_norm",
        "attention",
        "attention_heads",
    }
    assert all("output" not in fn for fn in summary["functions"])


@pytest.mark.browser
def test_a_corrupted_expected_output_fails_the_check(check_dir: Path, tmp_path: Path) -> None:
    """The comparison can fail: flip the expected values and the page reports a large error."""
    bad = tmp_path / "bad"
    shutil.copytree(check_dir, bad)
    tensors = read_tensor_cache(bad)
    tensors["expected.matmul_silu"] = -tensors["expected.matmul_silu"]
    for f in bad.glob("shard-*.bin"):
        f.unlink()
    write_tensor_cache(bad, tensors)
    assert wsd_web_main(["check", str(bad)]) == 1
