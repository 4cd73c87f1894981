"""Ranges of a convolution's rows slice the element-wise chain's inputs, not its
result (kernels/row_slices.py), and the group norm's normalisation fuses into
the kernels after it: the normalisation, its SiLU and each range's im2col are
one kernel, and no kernel writes the whole normalised activation."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.row_slices import sink_row_slices
from wsd_compile.kernels.subgroup_matrix import conv_in_rows, conv_row_ranges
from wsd_compile.webgpu import webgpu_target

T = relax.TensorType


def _chain(bb: relax.BlockBuilder, x: relax.Var, t: relax.Var, s: relax.Var) -> relax.Var:
    """``silu((x - mean) * s + t) * 0.5``, with operands broadcast along the
    rows: the channels' statistics, a row vector, a constant."""
    op = relax.op
    mean = bb.emit(op.mean(x, axis=[2, 3], keepdims=True))  # not element-wise
    centred = bb.emit(op.subtract(x, mean))
    shifted = bb.emit(op.add(op.multiply(centred, s), t))
    return bb.emit(op.multiply(op.nn.silu(shifted), relax.const(0.5, "float32")))


def test_a_slice_of_an_element_wise_chain_slices_its_input() -> None:
    shape = (1, 4, 12, 6)
    bb = relax.BlockBuilder()
    x, t = relax.Var("x", T(shape, "float32")), relax.Var("t", T((1, 4, 1, 6), "float32"))
    s = relax.Var("s", T((4, 1, 1), "float32"))
    with bb.function("main", [x, t, s]):
        with bb.dataflow():
            chained = _chain(bb, x, t, s)
            out = bb.emit_output(relax.op.strided_slice(chained, [2], [3], [9]))
        bb.emit_func_output(out)
    mod = _sunk(bb.get())
    script = mod["main"].script()
    # x is sliced once, for the subtraction (the mean reads it whole); nothing
    # after the mean has x's shape: the chain runs on the slice only.
    assert re.findall(r"R\.strided_slice\((\w+),", script) == ["x"], script
    assert f"R.Tensor({shape}" not in script.split("R.mean")[1], script
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(a).astype("float32") for a in (shape, (1, 4, 1, 6), (4, 1, 1))]
    got = _run(mod, args)
    xs, ts, ss = args
    shifted = (xs - xs.mean(axis=(2, 3), keepdims=True)) * ss + ts
    want = (shifted / (1 + np.exp(-shifted)) * 0.5)[:, :, 3:9]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _sunk(mod: tvm.IRModule) -> tvm.IRModule:
    sunk: tvm.IRModule = relax.transform.DeadCodeElimination()(sink_row_slices()(mod))
    return sunk


def test_a_slice_stays_at_what_else_reads_whole_or_is_not_element_wise() -> None:
    """A residual sum that is also returned whole is sliced as it is: going
    further up would read both of its terms where it is read once; a
    transpose is not element-wise; ``SiLU(sum / 2)``, which only slices
    read, is computed on the slices."""
    shape = (1, 4, 8, 8)
    op = relax.op
    bb = relax.BlockBuilder()
    x, y = relax.Var("x", T(shape, "float32")), relax.Var("y", T(shape, "float32"))
    with bb.function("main", [x, y]):
        with bb.dataflow():
            moved = bb.emit(op.permute_dims(x, [0, 1, 3, 2]))
            a = bb.emit(op.strided_slice(moved, [2], [0], [4]))
            summed = bb.emit(op.add(x, y))
            act = bb.emit(op.nn.silu(op.divide(summed, relax.const(2.0, "float32"))))
            parts = [bb.emit(op.strided_slice(act, [2], [r], [r + 4])) for r in (0, 4)]
            out = bb.emit_output(relax.Tuple([a, *parts, summed]))
        bb.emit_func_output(out)
    script = _sunk(bb.get())["main"].script()
    bound = dict(re.findall(r"^\s*(\w+): .* = (R\.\w+\(\w+)", script, re.M))
    sliced = sorted(v.split("(")[1] for v in bound.values() if v.startswith("R.strided_slice"))
    assert [bound[v] for v in sliced] == ["R.permute_dims(x", "R.add(x", "R.add(x"], script
    assert script.count("R.divide") == script.count("R.nn.silu") == 2, script


def _norm_silu_conv(shape: tuple[int, ...]) -> tvm.IRModule:
    """An fp16 build's resnet entry: the group norm in fp32 (what precision
    leaves), its SiLU as x * sigmoid(x) (what torch.export writes), a cast,
    a 3x3 convolution summing in fp32."""
    op = relax.op
    bb = relax.BlockBuilder()
    channels = shape[1]
    x = relax.Var("x", T(shape, "float32"))
    g, b = relax.Var("g", T((channels,), "float32")), relax.Var("b", T((channels,), "float32"))
    w = relax.Var("w", T((channels, channels, 3, 3), "float16"))
    with bb.function("main", [x, g, b, w]):
        with bb.dataflow():
            n = bb.emit(op.nn.group_norm(x, g, b, 32, 1, [2, 3], 1e-6))
            silu = bb.emit(op.astype(op.multiply(n, op.sigmoid(n)), "float16"))
            conv = bb.emit(op.nn.conv2d(silu, w, padding=1, out_dtype="float32"))
            out = bb.emit_output(op.add(conv, x))
        bb.emit_func_output(out)
    return bb.get()


def _kernels(mod: tvm.IRModule, im2col_max_bytes: int) -> list[str]:
    target = webgpu_target()
    kernels = DEFAULT_KERNELS.without(
        subgroup_matrix=True, subgroup_im2col_max_bytes=im2col_max_bytes
    )
    with target:
        built = webgpu_pipeline(target, kernels)(mod)
    return [gv.name_hint for gv, f in built.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]


def test_the_normalisation_silu_and_im2col_are_one_kernel() -> None:
    names = _kernels(_norm_silu_conv((1, 64, 32, 32)), 1 << 30)
    (entry,) = [n for n in names if "im2col" in n]
    assert "subtract" in entry and "sigmoid" in entry, names
    assert not any("sigmoid" in n or "subtract" in n for n in names if n != entry), names


def test_each_range_of_rows_normalises_its_own_slice() -> None:
    names = _kernels(_norm_silu_conv((1, 64, 32, 32)), 64 * 1024)
    ranges = [n for n in names if "im2col" in n]
    # 32 x 32 pixels x 576 x 2 bytes = 1.1 MiB of im2col: 32 ranges of one row
    # (two distinct kernels: the edges' padding differs).
    assert len(ranges) >= 2, names
    for kernel in ranges:
        assert kernel.startswith("fused_strided_slice"), names
        assert "subtract" in kernel and "sigmoid" in kernel, names
    # Nothing else normalises or takes the SiLU: no kernel writes the whole activation.
    rest = [n for n in names if n not in ranges]
    assert not any("sigmoid" in n or "subtract" in n for n in rest), names


def test_a_convolution_in_ranges_after_a_norm_and_silu_is_the_whole() -> None:
    """The rewrite as the pass emits it (ranges sliced before the SiLU and
    the affine normalisation), on llvm in fp32, against the whole."""
    shape, w_shape = (1, 16, 16, 8), (16, 16, 3, 3)
    # 16 x 8 pixels x 144 x 2 bytes = 36 KiB of im2col: 4 ranges of 4 rows.
    ranges = conv_row_ranges(_conv_call(shape, w_shape), 10000)
    assert ranges is not None and len(ranges) == 4
    rng = np.random.default_rng(1)
    args = [rng.standard_normal(a).astype("float32") for a in (shape, w_shape, (16, 1, 1))]
    whole, split = (_run(_silu_conv(shape, w_shape, r), args) for r in (None, ranges))
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)


def _conv_call(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> relax.Call:
    x = relax.Var("x", T(x_shape, "float16"))
    w = relax.Var("w", T(w_shape, "float16"))
    call: relax.Call = relax.BlockBuilder().normalize(
        relax.op.nn.conv2d(x, w, padding=1, out_dtype="float32")
    )
    return call


def _silu_conv(x_shape: tuple[int, ...], w_shape: tuple[int, ...], ranges: Any) -> tvm.IRModule:
    op = relax.op
    bb = relax.BlockBuilder()
    x, w = relax.Var("x", T(x_shape, "float32")), relax.Var("w", T(w_shape, "float32"))
    s = relax.Var("s", T((x_shape[1], 1, 1), "float32"))
    with bb.function("main", [x, w, s]):
        with bb.dataflow():
            act = bb.emit(op.nn.silu(op.multiply(x, s)))
            conv = bb.normalize(op.nn.conv2d(act, w, padding=1, out_dtype="float32"))
            if ranges is None:
                out = bb.emit_output(conv)
            else:
                out = bb.emit_output(op.concat(conv_in_rows(bb, conv, ranges), axis=2))
        bb.emit_func_output(out)
    mod = _sunk(bb.get())
    if ranges is not None:
        script = mod["main"].script()
        assert script.count("R.nn.silu") == len(ranges), script
        assert re.findall(r"R\.strided_slice\((\w+),", script) == ["x"] * len(ranges), script
    return mod


def _run(mod: tvm.IRModule, args: list[Any]) -> Any:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(a) for a in args])
    return result.numpy()
