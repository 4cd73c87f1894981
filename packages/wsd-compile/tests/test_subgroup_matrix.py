"""The subgroup-matrix (tensor core) matmuls: which products they take, and WGSL
whose hand-written part names what TVM's code generator declares. The kernels
run only where WebGPU has subgroup matrices (the H200 through Dawn in
docs/benchmarks/gpu-parity.json), not on the CPU or SwiftShader."""

from __future__ import annotations

import re

import pytest
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.subgroup_matrix import Gemm, gemm_blocks, subgroup_matrix_pass
from wsd_compile.webgpu import WASM_HOST, wgsl_sources


@pytest.mark.parametrize(
    ("shape", "blocks"),
    [
        ((8192, 320, 320), (2, 4)),  # SD 1.5's projections at 64x64: 32x64 blocks
        ((8192, 2560, 320), (2, 4)),
        ((128, 32, 64), (2, 2)),  # tiny-sd15: 32 output channels
        ((16, 48, 16), (1, 1)),
        ((154, 320, 768), None),  # 2 x 77 text tokens: not 16 rows at a time
        ((8192, 320, 40), None),  # K of 40
    ],
)
def test_products_tile_into_16x16x16_matrices_or_are_left_alone(
    shape: tuple[int, int, int], blocks: tuple[int, int] | None
) -> None:
    m, n, k = shape
    got = gemm_blocks(m, n, k)
    assert (None if got is None else (got.tm, got.tn)) == blocks
    if isinstance(got, Gemm):
        assert m % got.rows == 0 and n % got.cols == 0


def _module(a_shape: tuple[int, ...], k: int, n: int) -> tvm.IRModule:
    """``astype(matmul(a, w, out_dtype=f32), f16)``: what ``accumulate_fp32`` leaves."""
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType(a_shape, "float16"))
    w = relax.Var("w", relax.TensorType((k, n), "float16"))
    with bb.function("main", [a, w]):
        with bb.dataflow():
            c = bb.emit(relax.op.matmul(a, w, out_dtype="float32"))
            d = bb.emit_output(relax.op.astype(c, "float16"))
        bb.emit_func_output(d)
    return bb.get()


def test_an_fp16_matmul_summing_in_fp32_becomes_the_kernel_and_others_stay() -> None:
    rewritten = subgroup_matrix_pass(_module((2, 64, 64), 64, 128))
    text = rewritten.script()
    assert "R.call_tir(cls.subgroup_matrix_matmul" in text and "R.matmul" not in text
    kept = subgroup_matrix_pass(_module((2, 77, 64), 64, 128))
    assert "R.matmul" in kept.script() and "subgroup_matrix_matmul" not in kept.script()


def test_the_wgsl_names_the_buffers_tvm_declares_and_the_output_is_writable() -> None:
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True)
    pipeline = webgpu_pipeline(target, kernels)
    built = tvm.compile(_module((2, 64, 64), 64, 128), target=target, relax_pipeline=pipeline)
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_matmul_kernel" in s]
    assert re.search(r"var<storage, read> A_ptr : array<f16>;", source)
    assert re.search(r"var<storage, read> B_ptr : array<f16>;", source)
    assert re.search(r"var<workgroup> wsd_tile : array<f32, 2048>;", source)
    assert re.search(r"var<storage, read_write> \w+ : array<f32>;", source)
    assert "@workgroup_size(32, 1, 1)" in source
    # 2 x 4 accumulators of 16x16 (a 32x64 block), 4 steps of K.
    assert source.count("subgroupMatrixMultiplyAccumulate(") == 8
    assert "for (var wsd_k = 0u; wsd_k < 64u; wsd_k += 16u)" in source
    # What follows the hand-written part in the generated line is commented out.
    assert re.search(r"workgroupBarrier\(\);\n\s*//\(A_ptr, B_ptr, wsd_tile\);", source)
    assert "enable chromium_experimental_subgroup_matrix" not in source  # the page adds it
    # Without the option the same product is wsd's scalar matmul.
    plain = tvm.compile(
        _module((2, 64, 64), 64, 128), target=target, relax_pipeline=webgpu_pipeline(target)
    )
    assert not any("subgroup_matrix" in s for s in wgsl_sources(plain.mod))
