"""fp16 matmuls and convolutions that sum their products in fp32.

``ToMixedPrecision(out_dtype="float16")`` gives every ``relax.matmul`` and
``relax.nn.conv2d`` of an fp16 build ``out_dtype="float16"``, so the kernels
sum their reductions in fp16: on the GPU the fp16 builds then miss the parity
bar (38.8-46.9 dB against diffusers, latents off by up to 4.9e-2).
``accumulate_fp32``, run before legalization, rewrites each of them as
``astype(op(..., out_dtype="float32"), "float16")``: the cast fuses into the
kernel's epilogue, so the sum is kept in fp32 registers and the kernel still
reads and writes fp16 tensors. ``legalize_matmul`` (and the implicit-GEMM
convolutions, ``conv2d``) then convert the fp16 operands to fp32 in stages of
their own that the matmul schedule inlines into its tile loads: each element
is converted once, as it is staged in workgroup memory, instead of twice per
multiply-add.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax, te
from tvm.relax.expr_functor import PyExprMutator, mutator

from .shapes import static_shape

_FP16 = "float16"


def _is_fp16(expr: relax.Expr) -> bool:
    sinfo = expr.ty
    return isinstance(sinfo, relax.TensorType) and str(sinfo.dtype) == _FP16


@mutator
class _AccumulateRewriter(PyExprMutator):  # type: ignore[misc]
    """Replace fp16-in, fp16-out ``matmul`` and ``conv2d`` with their fp32-out
    form followed by a cast to fp16."""

    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.matmul = tvm.ir.Op.get("relax.matmul")
        self.conv2d = tvm.ir.Op.get("relax.nn.conv2d")

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op not in (self.matmul, self.conv2d):
            return call
        # The call's own type is its out_dtype (or the inputs' where that is unset).
        if not (_is_fp16(call) and all(_is_fp16(arg) for arg in call.args)):
            return call
        wide = self.builder_.emit(self._fp32_out(call))
        return self.builder_.normalize(relax.op.astype(wide, _FP16))

    def _fp32_out(self, call: relax.Call) -> relax.Expr:
        if call.op == self.matmul:
            return relax.op.matmul(*call.args, out_dtype="float32")
        a = call.attrs
        return relax.op.nn.conv2d(
            *call.args,
            strides=a.strides,
            padding=a.padding,
            dilation=a.dilation,
            groups=int(a.groups),
            data_layout=a.data_layout,
            kernel_layout=a.kernel_layout,
            out_layout=a.out_layout,
            out_dtype="float32",
        )


@tvm.transform.module_pass(opt_level=0, name="wsd.AccumulateFP32")  # type: ignore[untyped-decorator]
def accumulate_fp32(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Make every fp16 ``matmul`` and ``conv2d`` of ``mod``'s Relax functions
    sum in fp32 and cast its result to fp16 (anything else is left alone)."""
    rewriter = _AccumulateRewriter(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()


def _widened_matmul(a: te.Tensor, b: te.Tensor) -> te.Tensor:
    """``a @ b`` summed in fp32, the operands converted in stages of their own
    (``b`` 2-D, or of ``a``'s rank with the same leading dimensions)."""
    a32 = te.compute(a.shape, lambda *i: a(*i).astype("float32"), name="widen_a")
    b32 = te.compute(b.shape, lambda *i: b(*i).astype("float32"), name="widen_b")
    k = te.reduce_axis((0, a.shape[-1]), name="k")
    shape = (*a.shape[:-1], b.shape[-1])
    if len(b.shape) == 2:
        return te.compute(
            shape, lambda *i: te.sum(a32[(*i[:-1], k)] * b32[k, i[-1]], axis=k), name="matmul"
        )
    return te.compute(
        shape,
        lambda *i: te.sum(a32[(*i[:-1], k)] * b32[(*i[:-2], k, i[-1])], axis=k),
        name="matmul",
    )


def legalize_matmul(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """``relax.matmul`` of fp16 operands summed in fp32 as :func:`_widened_matmul`;
    every other matmul as TVM legalizes it."""
    a, b = call.args
    sa, sb = static_shape(a), static_shape(b)
    widened = (
        str(call.ty.dtype) == "float32"
        and _is_fp16(a)
        and _is_fp16(b)
        and sa is not None
        and sb is not None
        and len(sa) >= 2
        and sa[-1] == sb[0 if len(sb) == 2 else -2]
        and (len(sb) == 2 or (len(sb) == len(sa) and sa[:-2] == sb[:-2]))
    )
    if widened:
        result: relax.Expr = bb.call_te(_widened_matmul, a, b, primfunc_name_hint="matmul")
        return result
    default: Any = tvm.ir.Op.get("relax.matmul").get_attr("FLegalize")
    fallback: relax.Expr = default(bb, call)
    return fallback
