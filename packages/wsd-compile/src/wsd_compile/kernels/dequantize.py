"""Quantized weights dequantized inside the kernels that read them.

A build with ``--quantize`` computes each quantized weight with a call to a
``dequantize`` TIR function (:mod:`wsd_compile.quantized_graph`). Left alone,
that call would write the whole weight, in the build's precision, to GPU
memory before every matmul that reads it: the memory quantization is meant
to save. ``fuse_dequantize``, run before legalization, replaces each
``matmul`` or ``conv2d`` whose weight is such a call with one TIR function
that reads the packed integers and the scales: the dequantization is a stage
of that function (``quantize.dequantize_te``), which the matmul schedule
inlines into its tile loads, so every weight element is unpacked and scaled
in registers as it is staged in workgroup memory, and the ``dequantize``
call goes. A dequantized weight that something else reads keeps its call.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax, te

from ..quantize import SCHEMES, QuantScheme, dequantize_te
from ..quantized_graph import dequantize_recipe
from .conv2d import PackedWeight, conv2d_gemm
from .shapes import static_shape

_MATMUL = tvm.ir.Op.get("relax.matmul")
_CONV2D = tvm.ir.Op.get("relax.nn.conv2d")
_CALL_TIR = tvm.ir.Op.get("relax.call_tir")

#: A dequantized weight: its packed integers, scales, scheme and packed axis.
_Dequantized = tuple[relax.Expr, relax.Expr, QuantScheme, int]


def _quantized_matmul(
    a: te.Tensor,
    packed: te.Tensor,
    scales: te.Tensor,
    *,
    scheme: str,
    pack_axis: int,
    weight_shape: tuple[int, int],
    weight_dtype: str,
    out_dtype: str,
) -> te.Tensor:
    """``a @ W`` (``W`` of ``weight_shape``, ``[in, out]``) with ``W`` a
    ``dequantize`` stage, the operands converted to ``out_dtype`` (the sum's
    type) in stages of their own that the schedule inlines into its tile loads."""
    weight = dequantize_te(
        packed, scales, SCHEMES[scheme], pack_axis=pack_axis, shape=weight_shape, dtype=weight_dtype
    )
    a_sum = te.compute(a.shape, lambda *i: a(*i).astype(out_dtype), name="widen_a")
    w_sum = te.compute(weight_shape, lambda *i: weight(*i).astype(out_dtype), name="widen_b")
    k = te.reduce_axis((0, weight_shape[0]), name="k")
    return te.compute(
        (*a.shape[:-1], weight_shape[1]),
        lambda *i: te.sum(a_sum[(*i[:-1], k)] * w_sum[k, i[-1]], axis=k),
        name="matmul",
    )


def _dequantized(func: relax.Function, mod: tvm.IRModule) -> dict[relax.Var, _Dequantized]:
    """The variables of ``func`` bound to a ``dequantize`` call, with what it reads."""
    found: dict[relax.Var, _Dequantized] = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not (isinstance(value, relax.Call) and value.op.same_as(_CALL_TIR)):
                continue
            recipe = dequantize_recipe(mod[value.args[0]])
            if recipe is not None:
                packed, scales = value.args[1].fields
                found[binding.var] = (packed, scales, *recipe)
    return found


@relax.expr_functor.mutator
class _FuseDequantize(relax.PyExprMutator):  # type: ignore[misc]
    """Rewrites one function's matmuls and convolutions of dequantized weights."""

    def __init__(self, mod: tvm.IRModule, implicit_gemm: bool, block: int, split_k: int) -> None:
        super().__init__(mod)
        self.mod = mod
        self.implicit_gemm = implicit_gemm
        self.block = block
        self.split_k = split_k
        self.weights: dict[relax.Var, _Dequantized] = {}
        self.fused: set[relax.Var] = set()

    def rewrite(self, func: relax.Function) -> relax.Function:
        self.weights = _dequantized(func, self.mod)
        uses: dict[relax.Var, int] = {}
        fusable: dict[relax.Var, int] = {}

        def count(expr: relax.Expr) -> None:
            if isinstance(expr, relax.Var) and expr in self.weights:
                uses[expr] = uses.get(expr, 0) + 1
            if isinstance(expr, relax.Call) and self._fusable(expr):
                fusable[expr.args[1]] = fusable.get(expr.args[1], 0) + 1

        relax.analysis.post_order_visit(func.body, count)
        self.fused = {v for v in self.weights if uses.get(v, 0) == fusable.get(v, -1)}
        rewritten: relax.Function = self.visit_expr(func)
        return rewritten

    def _fusable(self, call: relax.Call) -> bool:
        if len(call.args) != 2 or call.args[1] not in self.weights:
            return False
        if call.op.same_as(_MATMUL):
            a, w = (static_shape(x) for x in call.args)
            return a is not None and w is not None and len(w) == 2 and a[-1] == w[0]
        if call.op.same_as(_CONV2D):
            attrs = call.attrs
            return bool(
                self.implicit_gemm
                and attrs.data_layout == "NCHW"
                and attrs.kernel_layout == "OIHW"
                and attrs.out_layout == "NCHW"
                and int(attrs.groups) == 1
                and all(int(d) == 1 for d in attrs.dilation)
                and static_shape(call.args[0]) is not None
            )
        return False

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var in self.fused:
            return  # every reader reads the packed weight itself
        super().visit_var_binding_(binding)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        if not (call.args and len(call.args) == 2 and call.args[1] in self.fused):
            return super().visit_call_(call)
        data = self.visit_expr(call.args[0])
        packed, scales, scheme, axis = self.weights[call.args[1]]
        packed, scales = self.visit_expr(packed), self.visit_expr(scales)
        weight = call.args[1]
        if call.op.same_as(_CONV2D):
            original = relax.Call(call.op, [data, weight], call.attrs)
            fused = conv2d_gemm(
                self.builder_,
                original,
                self.block,
                self.split_k,
                PackedWeight(packed, scales, scheme, axis),
            )
            if fused is None:  # _fusable said it applies
                raise AssertionError("conv2d_gemm refused a convolution _fusable accepted")
            return fused
        result: relax.Expr = self.builder_.call_te(
            _quantized_matmul,
            data,
            packed,
            scales,
            scheme=scheme.name,
            pack_axis=axis,
            weight_shape=tuple(static_shape(weight) or ()),
            weight_dtype=str(weight.ty.dtype),
            out_dtype=str(call.ty.dtype),
            primfunc_name_hint="matmul",
        )
        return result


def fuse_dequantize_pass(
    *, implicit_gemm: bool = True, channel_block: int = 0, split_k_tiles: int = 0
) -> Any:
    """The pass that fuses dequantization into the matmuls and (implicit-GEMM,
    as ``conv2d.conv2d_gemm`` with ``channel_block`` and ``split_k_tiles``)
    convolutions that read quantized weights; a module without quantized
    weights is returned as it is."""

    @tvm.transform.module_pass(opt_level=0, name="wsd.FuseDequantize")  # type: ignore[untyped-decorator]
    def fuse(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if not any(dequantize_recipe(f) is not None for _, f in mod.functions_items()):
            return mod
        rewriter = _FuseDequantize(mod, implicit_gemm, channel_block, split_k_tiles)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gvar, rewriter.rewrite(func))
        result: tvm.IRModule = relax.transform.DeadCodeElimination()(rewriter.builder_.get())
        return result

    return fuse
