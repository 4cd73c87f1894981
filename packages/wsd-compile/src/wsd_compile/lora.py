"""LoRA at runtime: which weights a LoRA may change, and the GPU functions that merge one.

A LoRA changes a linear (or convolution) weight ``W [out, in(, kh, kw)]`` by
``scale * up @ down`` (``up [out, r]``, ``down [r, in * kh * kw]``). The build
stores its weights transformed (a linear weight transposed for the matmul,
cast to float16) under positional names (``unet.17``), so the page cannot find
``down_blocks.0....to_q.weight`` by itself. :func:`lora_targets` reads each
component's lifted weight transform and records, for every weight that is
the model's own weight up to a transpose and a cast, where it is (its
position in the component's weight tuple), how it is laid out (``rows``:
as torch stores it, or ``cols``: transposed) and its torch shape. Weights the
transform does more to (quantized ones, say) are not targets, and a LoRA
that changes them is refused in the page.

The merge runs in place on the GPU (:func:`add_lora_functions`):
``lora_merge`` adds ``scale * left @ right`` to a 2-D weight (``up @ down``,
or ``down.T @ up.T`` for a transposed one), summing the rank in float32 and
rounding once to the weight's dtype, with the sizes taken at run time. A
convolution weight is merged as its 2-D view ``[out, in * kh * kw]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax, tirx
from tvm.script import tirx as T

#: The function the page merges LoRAs with.
MERGE_FUNCTION = "lora_merge"

#: Threads per workgroup of the merge (one output element each).
_THREADS = 128

_ASTYPE = tvm.ir.Op.get("relax.astype")
_PERMUTE = tvm.ir.Op.get("relax.permute_dims")

#: What the capture's graph wrappers call the model's modules, and what the model does:
#: the text encoder graphs hold ``encoder.layers`` as ``layers``. Text encoder paths
#: leave out CLIP's ``text_model.`` (transformers 5 has it in some classes, not in
#: others; LoRA files name it or not by the version that made them).
_PREFIXES = {"unet": (("unet.", ""),), "text": (("layers.", "encoder.layers."),)}


@dataclass(frozen=True)
class LoraTarget:
    """A weight a LoRA may change: its position in the component's weight tuple,
    its layout there (``rows`` as torch stores it, ``cols`` transposed), and its
    shape and dtype as torch and the build hold it."""

    param: int
    layout: str
    shape: tuple[int, ...]
    dtype: str

    def to_json(self, names: Sequence[str]) -> dict[str, Any]:
        return {
            "param": names[self.param],
            "layout": self.layout,
            "shape": list(self.shape),
            "dtype": self.dtype,
        }


def module_path(component: str, weight_name: str) -> str | None:
    """The model's own module path of a captured weight (``unet.down_blocks.0.x.weight``
    to ``down_blocks.0.x``), or None for what is not a ``.weight``."""
    if not weight_name.endswith(".weight"):
        return None
    path = weight_name[: -len(".weight")]
    table = _PREFIXES["unet" if component == "unet" else "text"]
    for old, new in table:
        if path.startswith(old):
            return new + path[len(old) :]
    return path


def _bindings(func: relax.Function) -> dict[relax.Var, relax.Expr]:
    return {b.var: b.value for block in func.body.blocks for b in block.bindings}


def _output_fields(func: relax.Function, bound: dict[relax.Var, relax.Expr]) -> list[relax.Expr]:
    out: relax.Expr = func.body.body
    while isinstance(out, relax.Var) and out in bound:
        out = bound[out]
    if not isinstance(out, relax.Tuple):
        raise AssertionError("the weight transform does not end in a tuple of its results")
    return list(out.fields)


def _trace(expr: relax.Expr, bound: dict[relax.Var, relax.Expr]) -> tuple[int, bool] | None:
    """The raw weight ``expr`` is, up to casts and 2-D transposes: its index and
    whether it is transposed (None: anything else)."""
    transposed = False
    while True:
        if isinstance(expr, relax.Var) and expr in bound:
            expr = bound[expr]
        elif isinstance(expr, relax.TupleGetItem):
            return int(expr.index), transposed
        elif isinstance(expr, relax.Call) and expr.op.same_as(_ASTYPE):
            expr = expr.args[0]
        elif isinstance(expr, relax.Call) and expr.op.same_as(_PERMUTE):
            if [int(a) for a in expr.attrs.axes] != [1, 0]:
                return None
            transposed = not transposed
            expr = expr.args[0]
        else:
            return None


def lora_targets(
    component: str, transform: relax.Function, weight_names: Sequence[str]
) -> dict[str, list[LoraTarget]]:
    """The weights of ``component`` a LoRA may change, by module path.

    ``transform`` is the component's lifted ``*_transform_params`` (its results
    are the weight tuple, in order) and ``weight_names`` its inputs' names (the
    captured program's parameters). A module whose weight is used twice (say
    transposed and not) has two targets.
    """
    bound = _bindings(transform)
    sources = transform.params[0].ty.fields
    found: dict[str, list[LoraTarget]] = {}
    for k, field_expr in enumerate(_output_fields(transform, bound)):
        traced = _trace(field_expr, bound)
        if traced is None:
            continue
        index, transposed = traced
        shape = tuple(int(d) for d in sources[index].shape.values)
        path = module_path(component, weight_names[index])
        if path is None or len(shape) not in (2, 4) or (transposed and len(shape) != 2):
            continue
        dtype = str(field_expr.ty.dtype)
        target = LoraTarget(k, "cols" if transposed else "rows", shape, dtype)
        found.setdefault(path, []).append(target)
    return found


def _merge_kernel(dtype: str) -> tirx.PrimFunc:
    """``w[r, c] += scale * sum_k left[r, k] * right[k, c]``, one thread per element."""

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def merge(w_h: T.handle, left_h: T.handle, right_h: T.handle, s_h: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        rows = T.int32()
        cols = T.int32()
        rank = T.int32()
        w = T.match_buffer(w_h, (rows, cols), dtype)
        left = T.match_buffer(left_h, (rows, rank), "float32")
        right = T.match_buffer(right_h, (rank, cols), "float32")
        scale = T.match_buffer(s_h, (1,), "float32")
        for r in T.thread_binding(rows, thread="blockIdx.y"):
            for bx in T.thread_binding((cols + _THREADS - 1) // _THREADS, thread="blockIdx.x"):
                for tx in T.thread_binding(_THREADS, thread="threadIdx.x"):
                    acc = T.alloc_buffer((1,), "float32", scope="local")
                    if bx * _THREADS + tx < cols:
                        acc[0] = T.float32(0)
                        for k in range(rank):
                            acc[0] = acc[0] + left[r, k] * right[k, bx * _THREADS + tx]
                        c = bx * _THREADS + tx
                        w[r, c] = T.Cast(dtype, T.Cast("float32", w[r, c]) + scale[0] * acc[0])

    return merge


def add_lora_functions(mod: tvm.IRModule, dtype: str) -> tvm.IRModule:
    """``mod`` with the merge function (:data:`MERGE_FUNCTION`) for weights of ``dtype``:
    ``f(weight, left, right, scale)`` adds ``scale[0] * left @ right`` to ``weight``
    (``[rows, cols]``) in place and returns it (``left``, ``right``, ``scale`` float32).
    A ``rows`` weight takes ``left = up``, ``right = down``; a ``cols`` (transposed)
    one ``left = down.T``, ``right = up.T``."""
    bb = relax.BlockBuilder(mod)
    symbol = f"{MERGE_FUNCTION}_kernel"
    kernel = bb.add_func(_merge_kernel(dtype).with_attr("global_symbol", symbol), symbol)
    rows, cols, rank = (tirx.Var(v, "int64") for v in ("rows", "cols", "rank"))
    w = relax.Var("weight", relax.TensorType((rows, cols), dtype))
    left = relax.Var("left", relax.TensorType((rows, rank), "float32"))
    right = relax.Var("right", relax.TensorType((rank, cols), "float32"))
    scale = relax.Var("scale", relax.TensorType((1,), "float32"))
    with bb.function(MERGE_FUNCTION, [w, left, right, scale], pure=False):
        out = relax.TensorType((rows, cols), dtype)
        merged = bb.emit(relax.call_tir_inplace(kernel, [w, left, right, scale], [0], out))
        bb.emit_func_output(merged)
    return bb.get()
