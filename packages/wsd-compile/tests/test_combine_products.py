"""Products by weights that read one activation become one product
(kernels/combine_products.py): the weights joined side by side, each product
its columns of the result, with the same numbers as before."""

from __future__ import annotations

import re

import numpy as np
import tvm
from tvm import relax

from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.kernels.combine_products import (
    COMBINE_MIN_ROWS,
    MAX_COMBINED,
    combine_products_pass,
)
from wsd_compile.webgpu import webgpu_target

T = relax.TensorType
ROWS, DEPTH = 256, 32
COLUMNS = (32, 32, 48)


def _attention_inputs(rows: int = ROWS) -> tvm.IRModule:
    """Three projections of ``x`` by weights in a tuple of parameters (as the
    importer binds them), one more by a plain parameter of the same depth
    (so it joins them: four in one group), and products of two activations,
    summed into one result."""
    op = relax.op
    bb = relax.BlockBuilder()
    x = relax.Var("x", T((2, rows // 2, DEPTH), "float16"))
    params = relax.Var("params", relax.TupleType([T((DEPTH, n), "float16") for n in COLUMNS]))
    other = relax.Var("other", T((DEPTH, DEPTH), "float16"))
    with bb.function("main", [x, params, other]):
        with bb.dataflow():
            ws = [bb.emit(relax.TupleGetItem(params, i)) for i in range(len(COLUMNS))]
            q, k, v = (bb.emit(op.matmul(x, w, out_dtype="float16")) for w in ws)
            y = bb.emit(op.matmul(x, other, out_dtype="float16"))
            scores = bb.emit(op.matmul(q, op.permute_dims(k, [0, 2, 1])))
            mixed = bb.emit(op.matmul(scores, v))
            out = bb.emit_output(op.add(op.sum(mixed), op.sum(y)))
        bb.emit_func_output(out)
    return bb.get()


def _calls(mod: tvm.IRModule, name: str) -> int:
    return len(re.findall(rf"R\.{name}\(", mod["main"].script()))


def test_products_by_weights_of_one_input_become_one() -> None:
    mod = combine_products_pass()(_attention_inputs())
    assert relax.analysis.check_well_formed(mod)
    # q, k, v and y: one product by the four weights side by side; the
    # scores and the mix (by activations) stay as they were.
    assert _calls(_attention_inputs(), "matmul") == 6
    assert _calls(mod, "matmul") == 3
    assert _calls(mod, "concat") == 1
    assert _calls(mod, "strided_slice") == 4
    joined = r'R\.Tensor\(\(2, 128, 144\), dtype="float16"\) = R\.matmul\(x, '
    assert re.search(joined, mod["main"].script())


def test_at_most_four_products_are_made_one() -> None:
    """Nine products of one input: two of four and one left alone, so that
    the kernel joining the weights binds at most 5 storage buffers."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", T((ROWS, DEPTH), "float16"))
    ws = [relax.Var(f"w{i}", T((DEPTH, 16), "float16")) for i in range(9)]
    with bb.function("main", [x, *ws]):
        with bb.dataflow():
            ys = [bb.emit(relax.op.matmul(x, w)) for w in ws]
            out = bb.emit_output(relax.op.concat(ys, axis=1))
        bb.emit_func_output(out)
    mod = combine_products_pass()(bb.get())
    assert MAX_COMBINED == 4
    assert _calls(mod, "matmul") == 3
    assert _calls(mod, "concat") == 3  # two joins of weights, and the result's own
    assert len(re.findall(r"R\.concat\(\(w\d+, w\d+, w\d+, w\d+\)", mod["main"].script())) == 2


def test_products_by_computed_tensors_keep_their_own() -> None:
    """A product by an element of a tuple the function computes (after the
    first product) is not a weight: combining it would read the tuple before
    it exists."""
    op = relax.op
    bb = relax.BlockBuilder()
    x = relax.Var("x", T((ROWS, DEPTH), "float16"))
    w, v = relax.Var("w", T((DEPTH, 16), "float16")), relax.Var("v", T((DEPTH, 32), "float16"))
    with bb.function("main", [x, w, v]):
        with bb.dataflow():
            a = bb.emit(op.matmul(x, w))
            halves = bb.emit(op.split(op.add(v, v), 2, axis=1))
            b = bb.emit(op.matmul(x, relax.TupleGetItem(halves, 0)))
            out = bb.emit_output(op.add(a, b))
        bb.emit_func_output(out)
    before = bb.get()
    after = combine_products_pass()(before)
    assert relax.analysis.check_well_formed(after)
    assert after["main"].script() == before["main"].script()


def test_inputs_of_few_rows_keep_their_products() -> None:
    few = _attention_inputs(rows=COMBINE_MIN_ROWS // 2)
    assert combine_products_pass()(few)["main"].script() == few["main"].script()


def test_the_numbers_do_not_change() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, ROWS // 2, DEPTH)).astype("float16")
    ws = [(rng.standard_normal((DEPTH, n)) * 0.2).astype("float16") for n in COLUMNS]
    other = (rng.standard_normal((DEPTH, DEPTH)) * 0.2).astype("float16")

    def run(mod: tvm.IRModule) -> float:
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        args = [
            tvm.runtime.tensor(x),
            [tvm.runtime.tensor(w) for w in ws],
            tvm.runtime.tensor(other),
        ]
        return float(vm["main"](*args).numpy())

    before, after = run(_attention_inputs()), run(combine_products_pass()(_attention_inputs()))
    assert after == before


def test_the_subgroup_matrix_path_combines_and_the_others_do_not() -> None:
    target = webgpu_target()
    mod = _attention_inputs()

    def products(kernels: object) -> int:
        lowered = webgpu_pipeline(target, kernels)(mod)  # type: ignore[arg-type]
        names = [
            g.name_hint for g, f in lowered.functions_items() if isinstance(f, tvm.tirx.PrimFunc)
        ]
        return sum("matmul" in n for n in names)

    combining = DEFAULT_KERNELS.without(subgroup_matrix=True)
    assert DEFAULT_KERNELS.subgroup_combine_from == COMBINE_MIN_ROWS
    assert products(combining) < products(combining.without(subgroup_combine_from=0))
    # The other paths never combine (their tiles are tuned per shape).
    plain = DEFAULT_KERNELS.without(subgroup_combine_from=0)
    assert products(DEFAULT_KERNELS) == products(plain)
