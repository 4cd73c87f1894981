"""fp32 accumulation of fp16 matmuls and convolutions (``accumulate_fp32``):
closer to exact than fp16 sums on the CPU, and one kernel per op with an f32
register accumulator and an f16 store on WebGPU."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, accumulate_fp32, legalize_map, webgpu_pipeline
from wsd_compile.webgpu import check_wgsl, webgpu_target, wgsl_sources

T = relax.TensorType
_Op = Callable[..., relax.Expr]


def _module(shapes: list[tuple[int, ...]], op: _Op, dtype: str = "float16") -> tvm.IRModule:
    bb = relax.BlockBuilder()
    params = [relax.Var(f"p{i}", T(s, dtype)) for i, s in enumerate(shapes)]
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(op(bb, *params))
        bb.emit_func_output(out)
    return bb.get()


def _matmul(bb: relax.BlockBuilder, x: relax.Expr, w: relax.Expr, out: str = "float16") -> Any:
    return relax.op.matmul(x, w, out_dtype=out)


def _conv(bb: relax.BlockBuilder, x: relax.Expr, w: relax.Expr, out: str = "float16") -> Any:
    return relax.op.nn.conv2d(x, w, padding=1, out_dtype=out)


def _fp32_then_cast(op: _Op) -> _Op:
    """``op`` written by hand as fp32 inputs, fp32 sum, then a cast to fp16."""

    def wide(bb: relax.BlockBuilder, x: relax.Expr, w: relax.Expr) -> Any:
        x32, w32 = (bb.emit(relax.op.astype(a, "float32")) for a in (x, w))
        return relax.op.astype(bb.emit(op(bb, x32, w32, "float32")), "float16")

    return wide


def _conv_fp64(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 3x3 convolution with padding 1 in fp64."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    out: np.ndarray = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64))
    return out


def _run(mod: tvm.IRModule, args: list[np.ndarray]) -> np.ndarray:
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    out: np.ndarray = vm["main"](*[tvm.runtime.tensor(a) for a in args]).numpy()
    return out


@pytest.mark.parametrize(
    ("shapes", "op", "split_k"),
    [
        ([(8, 4096), (4096, 16)], _matmul, None),
        ([(1, 512, 8, 8), (8, 512, 3, 3)], _conv, None),  # TVM's own conv2d lowering
        ([(1, 512, 8, 8), (8, 512, 3, 3)], _conv, 1024),  # implicit GEMM, split-K into 9
    ],
    ids=["matmul", "conv2d", "conv2d-implicit-gemm-split-k"],
)
def test_fp32_accumulation_is_closer_to_exact(
    shapes: list[tuple[int, ...]], op: _Op, split_k: int | None
) -> None:
    # Positive values, k = 4096 or 4608: the sums reach ~1000, where fp16's
    # spacing (0.5) swamps each product (~0.25) of an fp16 accumulator.
    rng = np.random.default_rng(0)
    args = [rng.uniform(0, 1, s).astype(np.float16) for s in shapes]
    x, w = args
    exact = x.astype(np.float64) @ w.astype(np.float64) if op is _matmul else _conv_fp64(x, w)

    def lower(mod: tvm.IRModule) -> tvm.IRModule:
        if split_k is None:
            return mod
        return relax.transform.LegalizeOps(legalize_map(16, split_k))(mod)

    mod = _module(shapes, op)
    plain = _run(lower(mod), args)
    rewritten = _run(lower(accumulate_fp32(mod)), args)
    by_hand = _run(lower(_module(shapes, _fp32_then_cast(op))), args)
    assert plain.dtype == rewritten.dtype == np.float16
    np.testing.assert_array_equal(rewritten, by_hand)
    err_plain = np.abs(plain - exact).max()
    err_rewritten = np.abs(rewritten - exact).max()
    # Within one fp16 step of the exact result; fp16 sums are far off.
    assert np.all(np.abs(rewritten - exact) <= np.spacing(np.abs(exact).astype(np.float16)))
    assert err_plain > 5 * err_rewritten, (err_plain, err_rewritten)


def _webgpu(mod: tvm.IRModule, fp32_accumulate: bool) -> str:
    target = webgpu_target()
    kernels = DEFAULT_KERNELS.without(fp32_accumulate=fp32_accumulate)
    executable = tvm.compile(mod, target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    sources = wgsl_sources(executable.mod)
    check_wgsl(sources)
    return "\n".join(sources)


def _bias(op: _Op) -> Callable[..., Any]:
    def with_bias(bb: relax.BlockBuilder, x: relax.Expr, w: relax.Expr, b: relax.Expr) -> Any:
        return relax.op.add(bb.emit(op(bb, x, w)), b)

    return with_bias


@pytest.mark.parametrize(
    ("shapes", "op"),
    [
        ([(128, 256), (256, 320), (320,)], _bias(_matmul)),
        ([(2, 64, 16, 16), (64, 64, 3, 3)], _conv),
    ],
    ids=["matmul-bias", "conv2d"],
)
def test_webgpu_kernel_accumulates_in_f32_and_stores_f16(
    shapes: list[tuple[int, ...]], op: _Op
) -> None:
    mod = _module(shapes, op)
    before, after = _webgpu(mod, False), _webgpu(mod, True)
    kernels = re.findall(r"^fn (\w+)", after, re.M)
    assert len(kernels) == 1 and "cast" in kernels[0]  # the cast fused into the epilogue
    sizes = re.findall(r"@workgroup_size\(([^)]*)\)", before)
    assert sizes == re.findall(r"@workgroup_size\(([^)]*)\)", after) == ["16, 16, 1"]
    # wsd's WebGPUMatmul (64x64 tiles, rows padded to 17 words): the operands are
    # converted once, as they are staged, so workgroup memory holds them in f32.
    tiles = r"var<workgroup> \w+ : array<(f\d+), (\d+)>"
    assert re.findall(tiles, before) == [("f16", "1088")] * 2
    assert re.findall(tiles, after) == [("f32", "1088")] * 2
    accumulator = r"var \w+_intermediate_reindex_local : array<(\w+), 16>"
    assert re.findall(r"var \w+_reindex_local : array<(\w+), 16>", before) == ["f16"]
    assert re.findall(accumulator, after) == ["f32"]
    # f32 multiply-adds with no conversion in the inner loop.
    assert re.search(r"= fma\(\w+_local\[0i\], \w+_local\[0i\], \w+_local\[0i\]\)", after)
    assert not re.search(r"fma\(f32\(", after)
    assert re.search(r"_ptr : array<f16>;", after) and "array<f32>" not in after
    assert re.search(r"_ptr\[[^\n]*\] = \(?f16\(\w+_local\[0i\]\)", after)


def test_split_k_sum_takes_the_cast_and_bias() -> None:
    """Split-K convolutions: fp32 partial sums, then one kernel that adds
    them, casts to fp16 and adds the bias."""
    mod = _module([(2, 128, 4, 4), (64, 128, 3, 3), (1, 64, 1, 1)], _bias(_conv))
    before, after = _webgpu(mod, False), _webgpu(mod, True)
    assert re.findall(r"^fn (\w+)", before, re.M) == [
        "conv2d_kernel",
        "fused_conv2d_split_sum_add_kernel",
    ]
    assert re.findall(r"^fn (\w+)", after, re.M) == [
        "conv2d_kernel",
        "fused_conv2d_split_sum_cast_add_kernel",
    ]
    assert re.findall(r"var \w+_local : array<f32, 16>", after)
    assert re.search(r"= \(f16\(\(lv_ptr\[", after)


def test_other_matmuls_and_convolutions_are_left_alone() -> None:
    cases: list[tuple[list[tuple[int, ...]], _Op, str]] = [
        ([(4, 8), (8, 4)], _matmul, "float32"),
        ([(1, 8, 6, 6), (4, 8, 3, 3)], _conv, "float32"),
        ([(4, 8), (8, 4)], lambda bb, x, w: _matmul(bb, x, w, "float32"), "float16"),
        ([(1, 8, 6, 6), (4, 8, 3, 3)], lambda bb, x, w: _conv(bb, x, w, "float32"), "float16"),
    ]
    for shapes, op, dtype in cases:
        mod = _module(shapes, op, dtype)
        tvm.ir.assert_structural_equal(accumulate_fp32(mod), mod)
    # An fp16 convolution keeps its attributes (strides, groups, layouts).
    mod = _module(
        [(1, 8, 6, 6), (4, 4, 3, 3)],
        lambda bb, x, w: relax.op.nn.conv2d(x, w, strides=2, padding=1, groups=2),
    )
    script = accumulate_fp32(mod).script()
    assert "strides=[2, 2], padding=[1, 1, 1, 1], dilation=[1, 1], groups=2" in script
    assert 'out_dtype="float32"' in script and 'R.astype(lv, dtype="float16")' in script
