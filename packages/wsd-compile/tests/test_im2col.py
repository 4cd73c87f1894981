"""The im2col kernel of convolutions on tensor cores: one thread per
(channel, image, pixel) writing every tap (:mod:`wsd_compile.kernels.im2col`)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
import tvm
from tvm import relax, s_tir, te, tirx

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.im2col import (
    IM2COL_ANNOTATION,
    Im2colSchedule,
    im2col_loops,
    im2col_t,
)
from wsd_compile.kernels.subgroup_tiles import TILES
from wsd_compile.webgpu import WASM_HOST, wgsl_sources


def _silu_im2col(
    shape: tuple[int, int, int, int], strides: tuple[int, int]
) -> tuple[te.Tensor, te.Tensor]:
    """``im2col(silu(x))`` for a 3x3 convolution padded by 1, as fusion leaves it."""
    x = te.placeholder(shape, "float32", name="x")
    silu = te.compute(shape, lambda *i: x[i] * tirx.sigmoid(x[i]), name="silu")
    return x, im2col_t(silu, kernel=(3, 3), strides=strides, padding=(1, 1, 1, 1))


@pytest.mark.parametrize(
    ("shape", "strides"),
    [((2, 3, 5, 6), (1, 1)), ((1, 4, 8, 6), (2, 2)), ((2, 5, 3, 7), (1, 1))],
)
def test_the_loops_of_a_thread_and_its_taps_compute_the_same_matrix(
    shape: tuple[int, int, int, int], strides: tuple[int, int]
) -> None:
    """The rule's loops (producer inlined, channel x image x pixel fused, the
    taps innermost) give the matrix the plain loops give, on the CPU."""
    x, out = _silu_im2col(shape, strides)
    func = te.create_prim_func([x, out])
    sch = s_tir.Schedule(func)
    sch.compute_inline(sch.get_sblock("silu"))
    found = im2col_loops(sch, sch.get_sblock("im2col"))
    assert found is not None
    threads, tap, lane = found
    assert sch.get(tap).extent == 9
    assert sch.get(threads).extent == shape[1] * out.shape[1]  # channels x images x pixels
    assert lane is None  # fp32: a pixel a thread
    data = np.random.default_rng(0).standard_normal(shape).astype("float32")
    results = []
    for mod in (func, sch.mod["main"]):
        got = tvm.runtime.tensor(np.zeros([int(d) for d in out.shape], "float32"))
        tvm.compile(mod, target="llvm")(tvm.runtime.tensor(data), got)
        results.append(got.numpy())
    assert np.array_equal(results[0], results[1])
    # ... and that matrix is the patches of silu(x): its centre tap is silu(x) itself.
    if strides == (1, 1):
        silu = data / (1 + np.exp(-data))
        centre = results[0].reshape(shape[1], 9, shape[0], -1)[:, 4]
        assert np.allclose(centre, silu.transpose(1, 0, 2, 3).reshape(shape[1], shape[0], -1))


def test_the_rule_takes_only_annotated_im2col_matrices() -> None:
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    x, out = _silu_im2col((1, 2, 4, 4), (1, 1))
    assert IM2COL_ANNOTATION in te.create_prim_func([x, out]).script()
    assert Im2colSchedule().apply(te.create_prim_func([x, out]), target, False) is not None
    y = te.compute(x.shape, lambda *i: x[i] * 2, name="double")
    assert Im2colSchedule().apply(te.create_prim_func([x, y]), target, False) is None


def test_the_wgsl_splits_each_threads_index_once_with_no_division() -> None:
    """SiLU and a convolution at SD 1.5's 64x64 level (320 channels, two
    images), its tiles reading an im2col matrix rather than gathering from
    the input: each thread writes 4 consecutive pixels' 9 taps, each tap as
    one vector of 4 halves (4 lines, the page makes them one store), 8192
    pixels apart, with shifts and masks only: no WGSL integer division or
    remainder."""
    body = _im2col_wgsl((2, 320, 64, 64), "float16")
    assert "@workgroup_size(256, 1, 1)" in body
    stores = re.findall(r"im2col_intermediate_ptr\[(v__\d+) \+ (\d)\] = vec4<f16>\(", body)
    assert [int(q) for _, q in stores] == [0, 1, 2, 3] * 9
    offsets = [re.search(rf"let {v} : i32 = (.*);", body) for v, _ in stores[::4]]
    assert all(
        o is not None and o[1].endswith(f" + {8192 * tap}i)")
        for tap, o in enumerate(offsets)
        if tap
    )
    assert not re.search(r"[^/]/ ?\d|%", body)


@pytest.mark.parametrize(
    ("shape", "dtype", "vector"),
    [
        ((1, 2, 4, 4), "float16", True),
        ((1, 2, 5, 5), "float16", False),
        ((1, 2, 4, 4), "float32", False),
    ],
)
def test_a_thread_takes_four_pixels_only_where_they_are_four_halves_of_an_image(
    shape: tuple[int, int, int, int], dtype: str, vector: bool
) -> None:
    """Written from registers as vectors (a ``local`` stage) where an image's
    pixels are in 4s and the matrix is fp16; else a pixel a thread, as before."""
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    x = te.placeholder(shape, dtype, name="x")
    out = im2col_t(x, kernel=(3, 3), strides=(1, 1), padding=(1, 1, 1, 1))
    sch = Im2colSchedule().apply(te.create_prim_func([x, out]), target, False)
    assert sch is not None
    assert ('"local"' in sch.mod.script()) == vector


def _im2col_wgsl(shape: tuple[int, int, int, int], dtype: str) -> str:
    """The WGSL of the im2col kernel of ``conv2d(silu(x))`` (3x3, padded by 1),
    from its entry point's attributes on."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, dtype))
    w = relax.Var("w", relax.TensorType((shape[1], shape[1], 3, 3), dtype))
    with bb.function("main", [x, w]):
        with bb.dataflow():
            s = bb.emit(relax.op.nn.silu(x))
            y = bb.emit(relax.op.nn.conv2d(s, w, padding=(1, 1), out_dtype="float32"))
            z = bb.emit_output(relax.op.astype(y, dtype))
        bb.emit_func_output(z)
    target = tvm.target.Target({"kind": "webgpu"}, host=WASM_HOST)
    tiles = replace(TILES, gather=False)
    kernels = DEFAULT_KERNELS.without(subgroup_matrix=True, subgroup_tiles=tiles)
    built = tvm.compile(bb.get(), target=target, relax_pipeline=webgpu_pipeline(target, kernels))
    [source] = [s for s in wgsl_sources(built.mod) if "fn fused_silu_im2col_kernel" in s]
    return source[source.rindex("@compute", 0, source.index("fn fused_silu_im2col_kernel")) :]
