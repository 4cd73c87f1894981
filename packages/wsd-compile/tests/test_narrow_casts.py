"""Casts to fp16 moved before a reshape (kernels/narrow_casts.py), so that a
layer norm before a product writes fp16 itself: the same numbers, one kernel
fewer. And a cast after a product fuses into what reads it, even where the
cast's value is bound to a second name (as the attention rewrite leaves it)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, KernelOptions
from wsd_compile.kernels.narrow_casts import narrow_before_reshape_pass

T = relax.TensorType
Kernels = Callable[[tvm.IRModule], list[str]]
Lowered = Callable[[tvm.IRModule, KernelOptions], tvm.IRModule]
BATCH, SEQ, DEPTH = 2, 64, 32


def _norm_then_product(*, also_read: bool = False, dtype: str = "float32") -> tvm.IRModule:
    """A transformer block's ``matmul(astype(reshape(layer_norm(x)), f16), w)``
    (with ``also_read``, the reshape read by a sum too; ``dtype``: x's)."""
    op = relax.op
    bb = relax.BlockBuilder()
    x = relax.Var("x", T((BATCH, SEQ, DEPTH), dtype))
    g, b = relax.Var("g", T((DEPTH,), dtype)), relax.Var("b", T((DEPTH,), dtype))
    w = relax.Var("w", T((DEPTH, DEPTH), "float16"))
    with bb.function("main", [x, g, b, w]):
        with bb.dataflow():
            normed = bb.emit(op.nn.layer_norm(x, g, b, axes=[-1]))
            rows = bb.emit(op.reshape(normed, (BATCH * SEQ, DEPTH)))
            if dtype == "float32":
                narrow = bb.emit(op.astype(rows, "float16"))
            else:  # widened, then narrowed again for the product
                narrow = bb.emit(op.astype(bb.emit(op.astype(rows, "float32")), "float16"))
            out = op.matmul(narrow, w, out_dtype="float32")
            if also_read:
                out = op.add(out, op.sum(rows))
            result = bb.emit_output(out)
        bb.emit_func_output(result)
    return bb.get()


def _ops(mod: tvm.IRModule) -> list[str]:
    """The operators ``main``'s bindings call, in order."""
    return [
        str(b.value.op.name)
        for block in mod["main"].body.blocks
        for b in block.bindings
        if isinstance(b.value, relax.Call) and isinstance(b.value.op, tvm.ir.Op)
    ]


def test_the_cast_moves_before_the_reshape() -> None:
    moved = narrow_before_reshape_pass()(_norm_then_product())
    after = relax.transform.DeadCodeElimination()(moved)
    assert relax.analysis.check_well_formed(after)
    ops = _ops(after)
    assert ops.index("relax.astype") < ops.index("relax.reshape")
    assert ops.count("relax.reshape") == 1  # the old one is dead


def test_other_readers_and_widening_casts_are_left_alone() -> None:
    for mod in (_norm_then_product(also_read=True), _norm_then_product(dtype="float16")):
        assert narrow_before_reshape_pass()(mod)["main"].script() == mod["main"].script()


def test_the_numbers_do_not_change() -> None:
    rng = np.random.default_rng(0)
    args = [
        rng.standard_normal((BATCH, SEQ, DEPTH)).astype("float32"),
        rng.standard_normal(DEPTH).astype("float32"),
        rng.standard_normal(DEPTH).astype("float32"),
        (rng.standard_normal((DEPTH, DEPTH)) * 0.2).astype("float16"),
    ]

    def run(mod: tvm.IRModule) -> np.ndarray:
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        return vm["main"](*(tvm.runtime.tensor(a) for a in args)).numpy()

    before = run(_norm_then_product())
    after = run(narrow_before_reshape_pass()(_norm_then_product()))
    np.testing.assert_array_equal(after, before)


def test_the_norm_writes_fp16_itself_in_a_webgpu_build(
    called_kernels: Kernels, lowered: Lowered
) -> None:
    def kernels(options: KernelOptions) -> list[str]:
        return called_kernels(lowered(_norm_then_product(), options))

    assert DEFAULT_KERNELS.narrow_before_reshape
    moved = kernels(DEFAULT_KERNELS)
    kept = kernels(DEFAULT_KERNELS.without(narrow_before_reshape=False))
    # Before: the norm writes fp32 and a kernel of its own reads it to cast it.
    assert "layer_norm" in kept and any("reshape" in n and "cast" in n for n in kept)
    assert len(moved) == len(kept) - 1
    assert any(n.startswith("fused_layer_norm_cast") for n in moved)
    assert not any("reshape" in n for n in moved)


def test_a_cast_bound_to_a_second_name_still_fuses_into_its_reader(
    called_kernels: Kernels, lowered: Lowered
) -> None:
    """An attention's ``P V`` in fp32, cast to fp16 and bound to a second name,
    then its heads put side by side for the output projection: the cast and
    the reshapes are one kernel on the subgroup-matrix path."""
    op = relax.op
    bb = relax.BlockBuilder()
    p = relax.Var("p", T((16, 128, 128), "float16"))
    v = relax.Var("v", T((16, 128, 80), "float16"))
    w = relax.Var("w", T((640, 640), "float16"))
    with bb.function("main", [p, v, w]):
        with bb.dataflow():
            heads = bb.emit(op.astype(bb.emit(op.matmul(p, v, out_dtype="float32")), "float16"))
            named = bb.emit(heads)  # the second name
            split = bb.emit(op.permute_dims(op.reshape(named, (2, 8, 128, 80)), [0, 2, 1, 3]))
            rows = bb.emit(op.reshape(split, (256, 640)))
            out = bb.emit_output(op.matmul(rows, w, out_dtype="float16"))
        bb.emit_func_output(out)
    kernels = called_kernels(lowered(bb.get(), DEFAULT_KERNELS.without(subgroup_matrix=True)))
    assert not any(n.startswith("cast") for n in kernels), kernels
    assert any(n.startswith("fused_cast_reshape") for n in kernels), kernels
