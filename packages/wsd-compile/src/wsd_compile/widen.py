"""The fp32 twin of an fp16 pipeline module: same functions, same weights, float32 arithmetic.

An fp16 build runs only where WebGPU has ``shader-f16``. Its fallback kernel
path is this module built for WebGPU: every float16 tensor of the graph
becomes float32 (weights, intermediate values, the casts ``ToMixedPrecision``
put in, and the ``out_dtype`` of matmuls and convolutions), and nothing else
changes. The functions keep their names, inputs, outputs and weight tuples,
in the same order and shapes, so the one set of fp16 shards serves both
libraries: the page widens each float16 weight to float32 as it uploads it.

The result computes what the fp16 build's weights give in float32, which is
closer to the original fp32 model than the fp16 arithmetic is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax

from .errors import WsdCompileError
from .quantized_graph import dequantize_recipe, widen_dequantize

HALF = "float16"
FULL = "float32"

#: Attribute fields that name a result dtype, by the ops that have them.
_DTYPE_FIELDS = ("dtype", "out_dtype")
_ASTYPE = tvm.ir.Op.get("relax.astype")
_CALL_TIR = tvm.ir.Op.get("relax.call_tir")


def _widen_type(ty: Any) -> Any:
    """A Relax type with every float16 tensor made float32."""
    if isinstance(ty, relax.TupleType):
        return relax.TupleType([_widen_type(f) for f in ty.fields])
    if isinstance(ty, relax.TensorType) and str(ty.dtype) == HALF:
        if ty.shape is None:
            return relax.TensorType(ndim=ty.ndim, dtype=FULL)
        return relax.TensorType(ty.shape, FULL)
    return ty


def _widened_attrs(call: relax.Call) -> Any:
    """``call``'s attributes with a float16 result dtype made float32 (None: unchanged)."""
    attrs = call.attrs
    if attrs is None:
        return None
    fields = {k: getattr(attrs, k) for k in _DTYPE_FIELDS if hasattr(attrs, k)}
    if not any(str(v) == HALF for v in fields.values()):
        return None
    info = type(attrs).__tvm_ffi_type_info__
    values = {f.name: getattr(attrs, f.name) for f in info.fields}
    values.update({k: FULL for k, v in fields.items() if str(v) == HALF})
    try:
        return tvm.ir.make_node(info.type_key, **values)
    except Exception as e:  # the op's attributes could not be rebuilt
        raise WsdCompileError(
            f"cannot widen {call.op} to float32 for the fp32 kernel path ({e}); "
            "build with --precision fp32 instead"
        ) from e


@relax.expr_functor.mutator
class _Widen(relax.PyExprMutator):  # type: ignore[misc]
    """Rewrites one function: parameters, constants and dtype attributes."""

    def visit_function_(self, func: relax.Function) -> relax.Expr:
        params = []
        for p in func.params:
            new = relax.Var(p.name, _widen_type(p.ty))
            self.set_var_remap(p, new)
            params.append(new)
        body = self.visit_with_new_scope(func.body)
        return relax.Function(params, body, _widen_type(func.ret_ty), func.is_pure, func.attrs)

    def visit_constant_(self, const: relax.Constant) -> relax.Expr:
        if str(const.data.dtype) != HALF:
            return const
        return relax.const(const.data.numpy().astype(np.float32), FULL)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        visited = super().visit_call_(call)
        if visited.op == _CALL_TIR:
            # A dequantize call: its TIR function is widened with the module.
            out = [_widen_type(t) for t in visited.ty_args]
            return relax.Call(visited.op, visited.args, visited.attrs, out)
        attrs = _widened_attrs(visited)
        if attrs is not None:
            visited = relax.Call(visited.op, visited.args, attrs, visited.ty_args)
        if visited.op == _ASTYPE:
            # A cast that no longer changes the dtype (float16 <-> float32) goes.
            source = visited.args[0]
            ty = source.ty
            if isinstance(ty, relax.TensorType) and str(ty.dtype) == str(visited.attrs.dtype):
                return source
        return visited


def widen_to_fp32(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` (an fp16 pipeline module, before the WebGPU pipeline) in float32.

    Every Relax function keeps its name, parameters and results in order;
    only float16 becomes float32. Raises :class:`~wsd_compile.WsdCompileError` when an op
    with a float16 result dtype cannot be rebuilt, or when float16 remains.
    """
    functions: dict[Any, Any] = {}
    for gv in mod.get_global_vars():
        func = mod[gv]
        if isinstance(func, relax.Function):
            func = _Widen().visit_expr(func)
        elif dequantize_recipe(func) is not None:
            func = widen_dequantize(func)
        # Keyed by the GlobalVar itself: calls (call_tir) refer to it.
        functions[gv] = func
    widened = tvm.IRModule(functions, attrs=mod.attrs)
    widened = relax.transform.Normalize()(widened)
    # A dropped cast leaves a binding of one variable to another; without it the
    # chains later passes match (attention, for fusion) read as in the fp16 module.
    widened = relax.transform.CanonicalizeBindings()(widened)
    if HALF in widened.script(show_meta=False):
        raise WsdCompileError(
            "float16 remains in the fp32 kernel path's module: an op wsd does not widen yet; "
            "build with --precision fp32 instead"
        )
    return widened
