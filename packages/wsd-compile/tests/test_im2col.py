"""The im2col kernel of convolutions on tensor cores: one thread per
(channel, image, pixel) writing every tap (:mod:`wsd_compile.kernels.im2col`)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import s_tir, te, tirx

from wsd_compile.kernels.im2col import (
    IM2COL_ANNOTATION,
    Im2colSchedule,
    im2col_loops,
    im2col_t,
)
from wsd_compile.webgpu import WASM_HOST


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
