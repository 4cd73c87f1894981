"""Casts to fp16 made before a reshape, so that the kernel writing the value writes fp16.

In an fp16 UNet and text encoder every transformer block's layer norms run
in fp32, and the product after each reads its result in fp16 through a
reshape: ``astype(reshape(layer_norm(x), rows), float16)``. TVM fuses an
element-wise cast into the reduction kernel before it, but not a reshape:
the norm writes its fp32 result, and a kernel of its own reads it back to
write the fp16 copy (at SD 1.5 512's 64x64 level, 10 MiB written and read
for nothing, 45 kernels a step).

:func:`narrow_before_reshape_pass` swaps the two: ``reshape(astype(v,
float16), rows)``. The values are the same, bit for bit (a reshape moves no
element); the cast fuses into the norm's kernel, which writes fp16, and a
reshape alone is a view, no kernel. Only a narrowing cast (fp32 to fp16) that
is its reshape's one reader is moved, so nothing is cast twice.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .function_pass import function_pass
from .relax_calls import op_name, tensor_dtype


def _moved(func: relax.Function) -> dict[relax.Var, relax.Call]:
    """``func``'s casts to fp16 of a reshape of fp32 that they alone read,
    each with that reshape."""
    found: dict[relax.Var, relax.Call] = {}
    for block in func.body.blocks:
        if not isinstance(block, relax.DataflowBlock):
            continue
        uses = relax.analysis.udchain(block)
        values = {binding.var: binding.value for binding in block.bindings}
        for binding in block.bindings:
            cast = binding.value
            if not (
                isinstance(binding.var, relax.DataflowVar)
                and op_name(cast) == "relax.astype"
                and tensor_dtype(binding.var) == "float16"
            ):
                continue
            shaped = cast.args[0]
            reshape = values.get(shaped) if isinstance(shaped, relax.DataflowVar) else None
            if (
                reshape is not None
                and op_name(reshape) == "relax.reshape"
                and tensor_dtype(reshape.args[0]) == "float32"
                and list(uses.get(shaped, [])) == [binding.var]
            ):
                found[binding.var] = reshape
    return found


@mutator
class _Swapper(PyExprMutator):  # type: ignore[misc]
    """Each chosen ``astype(reshape(v, s), float16)`` becomes
    ``reshape(astype(v, float16), s)`` (the old reshape is left to dead-code
    elimination)."""

    def __init__(self, mod: tvm.IRModule, moved: dict[relax.Var, relax.Call]) -> None:
        super().__init__(mod)
        self.moved = moved

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        reshape = self.moved.get(binding.var)
        if reshape is None:
            super().visit_var_binding_(binding)
            return
        narrow = self.builder_.emit(relax.op.astype(self.visit_expr(reshape.args[0]), "float16"))
        shaped = self.builder_.emit(relax.op.reshape(narrow, reshape.args[1]))
        self.set_var_remap(binding.var, shaped)


def narrow_before_reshape_pass() -> tvm.transform.Pass:
    """Cast to fp16 before a reshape rather than after it, in every Relax
    function of the module (see the module's docstring); run before fusion,
    then dead-code elimination."""
    return function_pass("wsd.NarrowBeforeReshape", _Swapper, _moved)
