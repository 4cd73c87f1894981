"""The subgroup-matrix (tensor core) matmuls: which products they take, and WGSL
whose hand-written part names what TVM's code generator declares. These are
the one-subgroup kernel's (workgroup tiles off: test_subgroup_tiles.py). The kernels
run only where WebGPU has subgroup matrices (the H200 through Dawn in
docs/benchmarks/gpu-parity.json), not on the CPU or SwiftShader."""

from __future__ import annotations

import re
from typing import Any

import pytest
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.shapes import pad_after
from wsd_compile.kernels.subgroup_matrix import (
    Gemm,
    RowRange,
    conv_row_ranges,
    gemm_blocks,
    gemm_wgsl,
    im2col_t,
    subgroup_matrix_pass,
)
from wsd_compile.kernels.subgroup_tiles import NO_TILES, TilePolicy
from wsd_compile.webgpu import WASM_HOST, wgsl_sources


@pytest.mark.parametrize(
    ("shape", "blocks"),
    [
        ((8192, 320, 320), (4, 4)),  # SD 1.5's projections at 64x64: 640 blocks of 64x64
        ((8192, 2560, 320), (4, 4)),
        ((2048, 640, 640), (4, 4)),  # ... at 32x32: 320 blocks of 64x64
        ((4032, 320, 640), (2, 4)),  # 315 blocks of 64x64, 630 of 32x64: 32x64
        ((1024, 640, 640), (2, 2)),  # 160 of 64x64, 320 of 32x64: 32x32
        ((8224, 320, 320), (2, 4)),  # rows not in 64s: 32x64
        ((512, 1280, 1280), (2, 2)),  # ... at 16x16: 320 blocks of 32x64, so 32x32
        ((128, 32, 64), (2, 2)),  # tiny-sd15: 32 output channels
        ((16, 48, 16), (1, 3)),
        ((16, 32, 16), (1, 2)),
        ((154, 320, 768), (2, 2)),  # 2 x 77 text tokens: the last row block overlaps
        ((24, 64, 64), (1, 2)),
        ((16384, 48, 4096), (2, 3)),  # P V, SD 1.5's head of 40 padded to 48
        ((16384, 4096, 48), (4, 4)),  # Q K^T over it: 32 x 64 was slower in a build
        ((8, 64, 64), None),  # fewer than 16 rows
        ((8192, 320, 40), None),  # K of 40
        ((8192, 77, 64), None),  # 77 columns
    ],
)
def test_products_tile_into_16x16x16_matrices_or_are_left_alone(
    shape: tuple[int, int, int], blocks: tuple[int, int] | None
) -> None:
    m, n, k = shape
    got = gemm_blocks(m, n, k)
    assert (None if got is None else (got.tm, got.tn)) == blocks
    if isinstance(got, Gemm):
        assert n % got.cols == 0 and got.ragged == (m % got.rows != 0)
        assert got.row_blocks * got.rows >= m > (got.row_blocks - 1) * got.rows
    # A convolution's pixels are always whole blocks.
    assert gemm_blocks(m, n, k, conv=True) is None or m % 16 == 0


def _module(
    a_shape: tuple[int, ...], k: int, n: int, w_shape: tuple[int, ...] | None = None
) -> tvm.IRModule:
    """``astype(matmul(a, w, out_dtype=f32), f16)``: what ``accumulate_fp32`` leaves;
    ``w`` is ``[k, n]`` unless ``w_shape`` says otherwise."""
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType(a_shape, "float16"))
    w = relax.Var("w", relax.TensorType(w_shape or (k, n), "float16"))
    with bb.function("main", [a, w]):
        with bb.dataflow():
            c = bb.emit(relax.op.matmul(a, w, out_dtype="float32"))
            d = bb.emit_output(relax.op.astype(c, "float16"))
        bb.emit_func_output(d)
    return bb.get()


def test_an_fp16_matmul_summing_in_fp32_becomes_the_kernel_and_others_stay() -> None:
    rewritten = subgroup_matrix_pass()(_module((2, 64, 64), 64, 128))
    text = rewritten.script()
    assert "R.call_tir(cls.subgroup_matrix_matmul" in text and "R.matmul" not in text
    kept = subgroup_matrix_pass()(_module((2, 77, 40), 40, 128))
    assert "R.matmul" in kept.script() and "subgroup_matrix_matmul" not in kept.script()


def test_the_wgsl_names_the_buffers_tvm_declares_and_the_output_is_writable() -> None:
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=NO_TILES)
    pipeline = webgpu_pipeline(target, kernels)
    built = tvm.compile(_module((2, 64, 64), 64, 128), target=target, relax_pipeline=pipeline)
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_matmul_kernel" in s]
    assert re.search(r"var<storage, read> A_ptr : array<f16>;", source)
    assert re.search(r"var<storage, read> B_ptr : array<f16>;", source)
    # The result is stored by the matrices themselves, bound writable through
    # a TIR store that never runs.
    assert "var<storage, read_write> C_ptr : array<f32>;" in source
    assert "var<workgroup>" not in source
    assert re.search(r"if \(all\(bool\(0\)\)\) \{\n\s*C_ptr\[0i\] = 0", source)
    assert "@workgroup_size(32, 1, 1)" in source
    # 2 x 2 accumulators of 16x16 (a 32x32 block: 4 blocks of 32x64 are
    # few), 4 steps of K: the first loaded before the loop, each step's
    # matrices loaded while the step before multiplies, the last peeled.
    assert source.count("subgroupMatrixMultiplyAccumulate(") == 8
    assert "var wsd_a_1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(" in source
    assert "(&A_ptr, (wsd_m0 + 16u) * 64u + 0u, false, 64u)" in source
    assert "for (var wsd_k = 0u + 16u; wsd_k < 64u; wsd_k += 16u)" in source
    assert "(&A_ptr, (wsd_m0 + 16u) * 64u + wsd_k, false, 64u)" in source
    assert "wsd_a_1 = wsd_next_a_1;" in source
    # Row-major, 128 columns; what follows the hand-written part in the
    # generated line is commented out.
    store = (
        "subgroupMatrixStore(&C_ptr, (wsd_m0 + 16u) * 128u + wsd_n0 + 16u, wsd_acc_1_1, "
        "false, 128u);"
    )
    assert re.search(re.escape(store) + r"\n\s*//\(A_ptr, B_ptr, C_ptr\);", source)
    assert "enable chromium_experimental_subgroup_matrix" not in source  # the page adds it
    # Without the option the same product is wsd's scalar matmul.
    plain = tvm.compile(
        _module((2, 64, 64), 64, 128), target=target, relax_pipeline=webgpu_pipeline(target)
    )
    assert not any("subgroup_matrix" in s for s in wgsl_sources(plain.mod))


def test_large_blocks_load_each_step_ahead_and_store_16_matrices() -> None:
    """64x64 blocks: 4 x 4 accumulators, 8 matrices loaded a step ahead, 16
    products in the loop and 16 after it, 16 stores straight to the result."""
    g = gemm_blocks(8192, 320, 320)
    assert g is not None and (g.tm, g.tn) == (4, 4)
    text = gemm_wgsl(g)
    assert "for (var wsd_k = 0u + 16u; wsd_k < 320u; wsd_k += 16u) {" in text
    assert "  let wsd_next_a_3 = subgroupMatrixLoad" in text
    assert "  let wsd_next_b_3 = subgroupMatrixLoad" in text
    assert text.count("subgroupMatrixMultiplyAccumulate(") == 32
    assert text.count("subgroupMatrixStore(&C_ptr, ") == 16
    assert "subgroupMatrixStore(&C_ptr, (wsd_m0 + 48u) * 320u + wsd_n0 + 48u, wsd_acc_3_3" in text


@pytest.mark.parametrize(
    ("shape", "workgroups", "parts"),
    [
        # SD 1.5's 3x3 convolutions at 8x8: 160 blocks of 32x32, 720 steps of k -> 8 ranges.
        ((128, 1280, 11520), 1024, 8),
        ((512, 1280, 5760), 1024, 2),  # ... at 16x16: 640 blocks of 32x32
        ((8192, 320, 2880), 1024, 2),  # at 64x64: 640 blocks of 64x64 -> 2 ranges
        ((32768, 320, 2880), 1024, 1),  # SDXL's at 128x128: 2560 blocks, enough
        ((128, 1280, 11520), 0, 1),  # split-K off
        ((32, 64, 1024), 1024, 4),  # 64 steps: ranges of at least 16
        ((32, 64, 256), 1024, 1),  # 16 steps: too shallow to split
    ],
)
def test_products_with_few_blocks_split_along_k(
    shape: tuple[int, int, int], workgroups: int, parts: int
) -> None:
    m, n, k = shape
    g = gemm_blocks(m, n, k, split_k_workgroups=workgroups)
    assert g is not None and g.parts == parts
    assert (k // 16) % g.parts == 0 and (parts == 1 or k // g.parts >= 256)


def test_a_split_product_sums_a_range_of_k_per_block_and_adds_the_parts_up() -> None:
    """32 x 1024 x 64: one block, split into 4 ranges of 256; ``blockIdx.y`` is
    (range, row block), and a kernel of its own adds the 4 partial results."""
    module = _module((2, 16, 1024), 1024, 64)
    text = subgroup_matrix_pass()(module).script()
    assert 'R.Tensor((4, 2, 16, 64), dtype="float32")' in text and "split_k_sum" in text
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    pipeline = webgpu_pipeline(
        target, DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=NO_TILES)
    )
    built = tvm.compile(module, target=target, relax_pipeline=pipeline)
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_matmul_kernel" in s]
    assert "let wsd_m0 = (blockIdx.y % 1u) * 32u;" in source
    assert "let wsd_part = (blockIdx.y / 1u);" in source
    assert "let wsd_k0 = wsd_part * 256u;" in source
    assert "for (var wsd_k = wsd_k0 + 16u; wsd_k < wsd_k0 + 256u; wsd_k += 16u)" in source
    # Each range's result is a [32, 64] matrix of its own.
    assert "subgroupMatrixStore(&C_ptr, wsd_part * 2048u + (wsd_m0 + 16u) * 64u" in source
    unsplit = DEFAULT_KERNELS.without(
        subgroup_matrix=True, subgroup_tiles=NO_TILES, subgroup_split_k_workgroups=0
    )
    plain = tvm.compile(module, target=target, relax_pipeline=webgpu_pipeline(target, unsplit))
    assert not any("split_k_sum" in s or "wsd_k0" in s for s in wgsl_sources(plain.mod))


def _wgsl_of(module: tvm.IRModule) -> str:
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    pipeline = webgpu_pipeline(
        target, DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=NO_TILES)
    )
    built = tvm.compile(module, target=target, relax_pipeline=pipeline)
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_matmul_kernel" in s]
    return source


def test_rows_not_in_whole_blocks_overlap_the_last_block() -> None:
    """2 x 77 text tokens: 5 blocks of 32 rows, the last starting at row 122,
    in the WGSL that loads A and stores the result."""
    module = _module((2, 77, 64), 64, 128)
    assert "R.call_tir(cls.subgroup_matrix_matmul" in subgroup_matrix_pass()(module).script()
    source = _wgsl_of(module)
    assert "let wsd_m0 = min(blockIdx.y * 32u, 122u);" in source
    assert "subgroupMatrixStore(&C_ptr, (wsd_m0 + 16u) * 128u + wsd_n0" in source  # ... and writes


def _batched_module(batch: int, m: int, k: int, n: int) -> tvm.IRModule:
    """[2, batch / 2, m, k] by [2, batch / 2, k, n]: attention's products."""
    return _module((2, batch // 2, m, k), k, n, w_shape=(2, batch // 2, k, n))


def test_batched_products_take_their_operands_per_product() -> None:
    """SDXL's 32x32 self-attention, Q K^T for 40 heads: blockIdx.y is (head, row
    block), and A and B are offset by the head's matrix."""
    g = gemm_blocks(1024, 1024, 64, batch=40, split_k_workgroups=1024)
    assert g is not None and (g.tm, g.tn, g.parts, g.workgroups) == (4, 4, 1, 40 * 16 * 16)
    module = _batched_module(4, 32, 64, 64)
    text = subgroup_matrix_pass()(module).script()
    assert "R.call_tir(cls.subgroup_matrix_matmul" in text and "R.matmul" not in text
    source = _wgsl_of(module)
    assert "let wsd_m0 = (blockIdx.y % 1u) * 32u;" in source
    assert "let wsd_b = blockIdx.y / 1u;" in source
    assert "<f16, 16, 16>>(&A_ptr, wsd_b * 2048u + " in source
    assert "<f16, 16, 16>>(&B_ptr, wsd_b * 4096u + " in source
    # A broadcast operand ([1, k, n] against [4, m, k]) is left alone.
    bb = relax.BlockBuilder()
    q = relax.Var("q", relax.TensorType((4, 32, 64), "float16"))
    w = relax.Var("w", relax.TensorType((1, 64, 64), "float16"))
    with bb.function("main", [q, w]):
        with bb.dataflow():
            out = bb.emit_output(relax.op.matmul(q, w, out_dtype="float32"))
        bb.emit_func_output(out)
    assert "R.matmul" in subgroup_matrix_pass()(bb.get()).script()


def test_a_split_batched_product_reads_part_and_product_from_blockidx_y() -> None:
    source = _wgsl_of(_batched_module(2, 16, 1024, 64))
    assert "let wsd_part = (blockIdx.y / 1u % 4u);" in source
    assert "subgroupMatrixStore(&C_ptr, wsd_part * 2048u + wsd_b * 1024u + " in source
    assert "let wsd_b = blockIdx.y / 4u;" in source


def _conv_module(x_shape: tuple[int, ...], w_shape: tuple[int, ...], **conv: Any) -> tvm.IRModule:
    """``astype(conv2d(x, w, out_dtype=f32), f16)``: what ``accumulate_fp32`` leaves."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(x_shape, "float16"))
    w = relax.Var("w", relax.TensorType(w_shape, "float16"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            c = bb.emit(relax.op.nn.conv2d(x, w, out_dtype="float32", **conv))
            d = bb.emit_output(relax.op.astype(c, "float16"))
        bb.emit_func_output(d)
    return bb.get()


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "conv", "taken"),
    [
        ((2, 32, 8, 8), (64, 32, 3, 3), {"padding": 1}, True),  # a resnet's 3x3
        ((2, 32, 8, 8), (32, 32, 3, 3), {"padding": 1, "strides": 2}, True),  # a downsampler
        ((2, 64, 8, 8), (32, 64, 1, 1), {}, True),  # a shortcut 1x1
        ((2, 4, 8, 8), (32, 4, 3, 3), {"padding": 1}, False),  # conv_in: K of 36
        ((2, 32, 8, 8), (4, 32, 3, 3), {"padding": 1}, False),  # conv_out: 4 channels
        ((1, 32, 3, 5), (32, 32, 1, 1), {}, False),  # 15 pixels
        # The VAE decoder's last level at 512x512: a 576 MiB im2col matrix, in ranges of rows.
        ((1, 128, 512, 512), (128, 128, 3, 3), {"padding": 1}, True),
        ((1, 512, 128, 128), (512, 512, 3, 3), {"padding": 1}, True),  # 144 MiB
    ],
)
def test_fp16_convolutions_summing_in_fp32_become_im2col_and_the_kernel(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], conv: dict[str, Any], taken: bool
) -> None:
    text = subgroup_matrix_pass()(_conv_module(x_shape, w_shape, **conv)).script()
    assert ("subgroup_matrix_conv2d" in text and "im2col" in text) == taken
    assert ("R.nn.conv2d" not in text) == taken


@pytest.mark.parametrize(
    ("x_shape", "kernel", "strides", "padding"),
    [((2, 3, 5, 6), (3, 3), (1, 1), (1, 1, 1, 1)), ((1, 2, 6, 6), (3, 3), (2, 2), (1, 1, 1, 1))],
)
def test_im2col_t_is_the_transposed_patch_matrix(
    x_shape: tuple[int, int, int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> None:
    """Column m (image, row, column) of the matrix is the patch under output
    pixel m, channel-major as an OIHW weight flattens: the GEMM with the
    weight is torch's convolution."""
    import numpy as np
    import torch
    from tvm import te

    x = te.placeholder(x_shape, "float32", name="x")
    out = im2col_t(x, kernel=kernel, strides=strides, padding=padding)
    run = tvm.compile(te.create_prim_func([x, out]), target="llvm")
    data = np.random.default_rng(0).standard_normal(x_shape).astype("float32")
    got = tvm.runtime.tensor(np.zeros([int(d) for d in out.shape], "float32"))
    run(tvm.runtime.tensor(data), got)
    weight = np.random.default_rng(1).standard_normal((4, x_shape[1], *kernel)).astype("float32")
    ref = torch.nn.functional.conv2d(
        torch.from_numpy(data), torch.from_numpy(weight), stride=strides, padding=padding[:2]
    ).numpy()
    gemm = weight.reshape(4, -1) @ got.numpy()  # [o, n oh ow]
    n, oh, ow = x_shape[0], ref.shape[2], ref.shape[3]
    assert np.allclose(gemm.reshape(4, n, oh, ow).transpose(1, 0, 2, 3), ref, atol=1e-4)


def test_the_conv_wgsl_reads_the_transposed_operands_and_writes_nchw() -> None:
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    pipeline = webgpu_pipeline(
        target, DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=NO_TILES)
    )
    module = _conv_module((2, 32, 8, 8), (64, 32, 3, 3), padding=1)
    built = tvm.compile(module, target=target, relax_pipeline=pipeline)
    sources = wgsl_sources(built.mod)
    [source] = [s for s in sources if "subgroup_matrix_conv2d_kernel" in s]
    assert any("im2col" in s for s in sources)
    # m = 2 x 8 x 8 = 128 pixels, k = 32 x 9 = 288: A^T and the OIHW weight column-major.
    assert "(&A_ptr, wsd_k * 128u + wsd_m0 + 16u, true, 128u)" in source
    assert "(&B_ptr, (wsd_n0 + 16u) * 288u + wsd_k, true, 288u)" in source
    assert "(&B_ptr, (wsd_n0 + 16u) * 288u + 0u, true, 288u)" in source  # the first step
    # Stored column-major into NCHW: a matrix is 16 adjacent pixels (rows) of
    # 16 channels, 64 pixels an image.
    assert "let wsd_r1 = wsd_m0 + 16u;" in source
    assert (
        "subgroupMatrixStore(&C_ptr, (wsd_r1 / 64u * 64u + wsd_n0 + 16u) * 64u + wsd_r1 % 64u, "
        "wsd_acc_1_1, true, 64u);"
    ) in source


def test_conv_matrices_spanning_images_go_through_workgroup_memory() -> None:
    """Images of 2x2 pixels: a 16-row matrix holds 4 images, so it cannot be
    stored into NCHW as one; the tile goes to workgroup memory column-major
    and the invocations write it with TIR stores."""
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    pipeline = webgpu_pipeline(
        target, DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=NO_TILES)
    )
    module = _conv_module((8, 32, 2, 2), (64, 32, 1, 1))
    built = tvm.compile(module, target=target, relax_pipeline=pipeline)
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_conv2d_kernel" in s]
    assert "var<workgroup> wsd_tile : array<f32, 1024>;" in source
    assert "subgroupMatrixStore(&wsd_tile, 528u, wsd_acc_1_1, true, 32u);" in source
    assert re.search(r"workgroupBarrier\(\);\n\s*//\(A_ptr, B_ptr, wsd_tile\);", source)
    assert re.search(r"var<storage, read_write> \w+ : array<f32>;", source)


@pytest.mark.parametrize("gather", [True, False])
def test_convolutions_in_workgroup_tiles_gather_from_their_input(gather: bool) -> None:
    """Implicit GEMM: a convolution in workgroup tiles reads its NCHW input,
    no im2col kernel before it; with ``gather`` off it reads the matrix the
    im2col kernel writes."""
    tiles = TilePolicy(large_from=1, gather=gather)
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=tiles)
    module = _conv_module((2, 64, 8, 16), (64, 64, 3, 3), padding=1)
    text = subgroup_matrix_pass(tiles=tiles)(module).script()
    assert ("im2col" not in text) == gather and "R.nn.conv2d" not in text
    built = tvm.compile(module, target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    sources = wgsl_sources(built.mod)
    [source] = [s for s in sources if "subgroup_matrix_conv2d_kernel" in s]
    assert any("im2col" in s for s in sources) != gather
    # Images of 8 x 16: the last of 4 columns can fall in the right padding.
    assert ("A_ptr[wsd_row + clamp(wsd_ix + 3, 0, 15)], wsd_ix < 13)" in source) == gather
    # A stage is 16 columns of K, a channel's 9 taps: one channel on, and 7 taps.
    assert ("wsd_ta0 += 7u;" in source) == gather


def _conv_call(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], dtype: str = "float16", **conv: Any
) -> relax.Call:
    x = relax.Var("x", relax.TensorType(x_shape, dtype))
    w = relax.Var("w", relax.TensorType(w_shape, dtype))
    call = relax.op.nn.conv2d(x, w, out_dtype="float32", **conv)
    normalized: relax.Call = relax.BlockBuilder().normalize(call)
    return normalized


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "conv", "chunks"),
    [
        # The VAE decoder at 512x512: 576 MiB and 1.1 GiB of im2col.
        ((1, 128, 512, 512), (128, 128, 3, 3), {"padding": 1}, 4),
        ((1, 256, 512, 512), (128, 256, 3, 3), {"padding": 1}, 8),
        # SDXL's up blocks at 128x128 (CFG batch 2): 960 and 640 input channels.
        ((2, 960, 128, 128), (320, 960, 3, 3), {"padding": 1}, 4),
        ((2, 640, 128, 128), (320, 640, 3, 3), {"padding": 1}, 2),
        # A strided downsampler: output rows read every other input row.
        ((1, 256, 512, 512), (256, 256, 3, 3), {"padding": 1, "strides": 2}, 2),
        ((1, 512, 128, 128), (512, 512, 3, 3), {"padding": 1}, None),  # 144 MiB: whole
        ((1, 4, 512, 512), (128, 4, 3, 3), {"padding": 1}, None),  # K of 36: not the kernel
    ],
)
def test_large_convolutions_split_into_ranges_of_output_rows_that_fit(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], conv: dict[str, Any], chunks: int | None
) -> None:
    call = _conv_call(x_shape, w_shape, **conv)
    ranges = conv_row_ranges(call, 256 << 20)
    assert (None if ranges is None else len(ranges)) == chunks
    if ranges is None:
        return
    height, kh, stride = x_shape[2], w_shape[2], conv.get("strides", 1)
    out_h = int(call.ty.shape[2])
    k, per_row = x_shape[1] * kh * w_shape[3], x_shape[0] * int(call.ty.shape[3])
    # Equal ranges that cover the output rows, each im2col within the limit.
    assert [r.start for r in ranges] == list(range(0, out_h, out_h // chunks))
    assert ranges[-1].stop == out_h
    for r in ranges:
        assert (r.stop - r.start) * per_row * k * 2 <= 256 << 20
        assert 0 <= r.first < r.last <= height
        # The rows read, with the range's padding, give exactly its output rows.
        assert (r.last - r.first + r.top + r.bottom - kh) // stride + 1 == r.stop - r.start
    assert ranges[0].top == 1 and ranges[-1].bottom == (1 if stride == 1 else 0)
    assert all(r.top == 0 for r in ranges[1:]) and all(r.bottom == 0 for r in ranges[:-1])


def test_a_convolution_in_ranges_of_rows_is_the_whole_convolution() -> None:
    """The row split of the pass (slices with a halo, the image edges' padding,
    joined along the rows) computes the same numbers as the whole convolution,
    on llvm: the split as the pass writes it, before its kernels, which only
    run on tensor cores."""
    import numpy as np

    for x_shape, w_shape, conv, chunks in [
        ((2, 16, 16, 8), (32, 16, 3, 3), {"padding": 1}, 16),
        ((1, 16, 16, 16), (16, 16, 3, 3), {"padding": 1, "strides": 2}, 4),
        # The SD VAE encoder's downsampler: padded only at the bottom and right.
        ((1, 16, 32, 8), (16, 16, 3, 3), {"padding": (0, 0, 1, 1), "strides": 2}, 4),
    ]:
        call = _conv_call(x_shape, w_shape, **conv)
        ranges = conv_row_ranges(call, 5000)
        assert ranges is not None and len(ranges) == chunks
        whole, split = _run_conv(call, None), _run_conv(call, ranges)
        np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)


def _run_conv(call: relax.Call, ranges: list[RowRange] | None) -> Any:
    """``call`` (fp32 on llvm) whole or as the pass splits it into ``ranges``."""
    import numpy as np

    from wsd_compile.kernels.subgroup_matrix import conv_in_rows

    x_shape = [int(d) for d in call.args[0].ty.shape]
    w_shape = [int(d) for d in call.args[1].ty.shape]
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(x_shape, "float32"))
    w = relax.Var("w", relax.TensorType(w_shape, "float32"))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            like = relax.op.nn.conv2d(
                x,
                w,
                strides=call.attrs.strides,
                padding=call.attrs.padding,
                out_dtype="float32",
            )
            if ranges is None:
                out = bb.emit_output(like)
            else:
                parts = conv_in_rows(bb, bb.normalize(like), ranges)
                out = bb.emit_output(relax.op.concat(parts, axis=2))
        bb.emit_func_output(out)
    vm = relax.VirtualMachine(tvm.compile(bb.get(), target="llvm"), tvm.cpu())
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype("float32") for s in (x_shape, w_shape)]
    return vm["main"](*[tvm.runtime.tensor(a) for a in inputs]).numpy()


def test_a_large_convolution_becomes_one_kernel_per_range_of_rows_joined() -> None:
    text = subgroup_matrix_pass(im2col_max_bytes=64 * 1024)(
        _conv_module((2, 32, 16, 16), (64, 32, 3, 3), padding=1)
    ).script()
    # 2 x 16 x 16 pixels x 288 x 2 bytes = 288 KiB: 8 ranges of 2 rows, of one kernel.
    assert text.count("R.strided_slice") == 8
    assert text.count("cls.subgroup_matrix_conv2d,") == 8
    assert "R.concat" in text and "R.nn.conv2d" not in text


def test_the_ranges_of_a_convolution_share_one_im2col_buffer() -> None:
    """Each range's im2col matrix is consumed by its product before the next
    range's is written: the memory plan holds one of them, not one per range
    (the VAE decoder at 512x512 would otherwise keep 8 x 144 MiB)."""
    from wsd_compile.buffers import _planned_storage
    from wsd_compile.webgpu import webgpu_target

    target = webgpu_target()
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, subgroup_tiles=NO_TILES, subgroup_im2col_max_bytes=64 * 1024
    )
    with target:
        lowered = webgpu_pipeline(target, kernels)(
            _conv_module((2, 32, 16, 16), (64, 32, 3, 3), padding=1)
        )
    # 8 ranges, im2col [288, 64] fp16 = 36 KiB each: one storage of that size.
    sizes = _planned_storage(lowered)["main"]
    assert sizes.count(288 * 64 * 2) == 1, sizes


def test_the_threshold_for_64x64_blocks_is_a_kernel_option() -> None:
    """The GPU parity builds set it to 1, so that the tiny presets' products
    with rows in 64s and columns in 64s run in the blocks SD 1.5 uses."""
    default = gemm_blocks(128, 64, 64)
    assert default is not None and (default.tm, default.tn) == (2, 2)
    small = gemm_blocks(128, 64, 64, large_blocks_from=1)
    assert small is not None and (small.tm, small.tn, small.workgroups) == (4, 4, 2)
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, subgroup_tiles=NO_TILES, subgroup_large_blocks_from=1
    )
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    module = _module((2, 64, 64), 64, 128)
    built = tvm.compile(module, target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    [source] = [s for s in wgsl_sources(built.mod) if "subgroup_matrix_matmul_kernel" in s]
    assert "subgroupMatrixStore(&C_ptr, (wsd_m0 + 48u) * 128u + wsd_n0 + 48u, wsd_acc_3_3" in source


def test_pad_widths_name_the_end_of_each_axis() -> None:
    assert pad_after(3, {1: 3}) == [0, 0, 0, 3, 0, 0]
    assert pad_after(4, {-2: 5, -1: 8}) == [0, 0, 0, 0, 0, 5, 0, 8]
    assert pad_after(2, {}) == [0, 0, 0, 0]
