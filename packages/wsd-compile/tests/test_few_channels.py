"""Convolutions of a few output channels, summed directly, a thread per output
pixel (:mod:`wsd_compile.kernels.few_channels`)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax, s_tir, te

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.few_channels import (
    FEW_CHANNELS_ANNOTATION,
    FewChannelsConv,
    few_channels_conv2d,
    few_channels_loops,
)
from wsd_compile.webgpu import WASM_HOST, wgsl_sources

TARGET = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)


def _numpy_conv(
    x: np.ndarray, w: np.ndarray, strides: tuple[int, int], padding: tuple[int, int, int, int]
) -> np.ndarray:
    """The convolution in float64, by its definition."""
    top, left, bottom, right = padding
    padded = np.pad(x.astype("float64"), ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, height, width = padded.shape
    cout, _, kh, kw = w.shape
    out_h = (height - kh) // strides[0] + 1
    out_w = (width - kw) // strides[1] + 1
    out = np.zeros((n, cout, out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + strides[0] * out_h, strides[0])
            cols = slice(j, j + strides[1] * out_w, strides[1])
            patch = padded[:, :, rows, cols]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j].astype("float64"))
    return out


@pytest.mark.parametrize(
    ("shape", "weight", "strides", "padding"),
    [
        ((2, 5, 6, 7), (3, 5, 3, 3), (1, 1), (1, 1, 1, 1)),
        ((1, 4, 8, 6), (4, 4, 3, 3), (2, 2), (0, 0, 1, 1)),
        ((2, 3, 5, 5), (1, 3, 1, 1), (1, 1), (0, 0, 0, 0)),
    ],
)
def test_the_rules_loops_give_the_convolution(
    shape: tuple[int, int, int, int],
    weight: tuple[int, int, int, int],
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> None:
    """The direct sum, with the rule's loops (pixels fused, the window's
    element in a register for every output channel), is the convolution, on the CPU."""
    x = te.placeholder(shape, "float16", name="x")
    w = te.placeholder(weight, "float16", name="w")
    out = few_channels_conv2d(x, w, strides=strides, padding=padding, out_dtype="float32")
    func = te.create_prim_func([x, w, out])
    sch = s_tir.Schedule(func)
    assert few_channels_loops(sch) is not None
    rng = np.random.default_rng(0)
    data = rng.standard_normal(shape).astype("float16")
    kernel = rng.standard_normal(weight).astype("float16")
    expected = _numpy_conv(data, kernel, strides, padding)
    for mod in (func, sch.mod["main"]):
        got = tvm.runtime.tensor(np.zeros(expected.shape, "float32"))
        tvm.compile(mod, target="llvm")(tvm.runtime.tensor(data), tvm.runtime.tensor(kernel), got)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_the_rule_takes_only_annotated_convolutions() -> None:
    x = te.placeholder((1, 2, 4, 4), "float32", name="x")
    w = te.placeholder((3, 2, 3, 3), "float32", name="w")
    out = few_channels_conv2d(x, w, strides=(1, 1), padding=(1, 1, 1, 1), out_dtype="float32")
    assert FEW_CHANNELS_ANNOTATION in te.create_prim_func([x, w, out]).script()
    assert FewChannelsConv().apply(te.create_prim_func([x, w, out]), TARGET, False) is not None
    y = te.compute(x.shape, lambda *i: x[i] * 2, name="double")
    assert FewChannelsConv().apply(te.create_prim_func([x, y]), TARGET, False) is None


def _conv_out(
    cout: int,
    few_channels: int = DEFAULT_KERNELS.few_channels,
    data: tuple[int, int, int, int] = (1, 64, 64, 64),
) -> list[str]:
    """A VAE decoder's ``conv_out`` (``data``'s channels to ``cout``, 3x3,
    bias, fp16 out) built for WebGPU: the WGSL of its kernels."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(data, "float16"))
    w = relax.Var("w", relax.TensorType((cout, data[1], 3, 3), "float16"))
    bias = relax.Var("bias", relax.TensorType((1, cout, 1, 1), "float32"))
    with bb.function("main", [x, w, bias]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w, padding=(1, 1), out_dtype="float32"))
            y = bb.emit(relax.op.add(y, bias))
            z = bb.emit_output(relax.op.astype(y, "float16"))
        bb.emit_func_output(z)
    kernels = DEFAULT_KERNELS.without(few_channels=few_channels)
    built = tvm.compile(bb.get(), target=TARGET, relax_pipeline=webgpu_pipeline(TARGET, kernels))
    return list(wgsl_sources(built.mod))


def test_conv_out_is_one_kernel_a_thread_a_pixel_reading_each_element_once() -> None:
    """Three output channels: one kernel (the bias and the cast fused), 64
    threads a workgroup, three sums in registers, and per input channel the
    nine elements of the window each loaded once (not once per channel)."""
    [source] = [s for s in _conv_out(3) if "fn fused_conv2d_few" in s]
    assert "@workgroup_size(64, 1, 1)" in source
    body = source[source.index("fn fused_conv2d_few") :]
    assert "array<f32, 3>" in body
    loop = body[body.index("for (var c") :]
    assert len(re.findall(r"x_ptr\[", loop)) == 9
    assert len(re.findall(r"w_ptr\[", loop)) == 27
    assert "bias_ptr[" in body


def test_more_channels_fewer_pixels_or_the_option_off_keep_the_implicit_gemm() -> None:
    assert not any("conv2d_few" in s for s in _conv_out(16))
    assert not any("conv2d_few" in s for s in _conv_out(3, few_channels=0))
    # SD 1.5 512's UNet conv_out: 8192 pixels, sums of 320 x 9 (under 4 pixels a term).
    assert not any("conv2d_few" in s for s in _conv_out(4, data=(2, 320, 64, 64)))
    assert any("conv2d_few" in s for s in _conv_out(4, data=(2, 320, 128, 128)))
