"""fp16 matmuls and convolutions that sum their products in fp32.

``ToMixedPrecision(out_dtype="float16")`` gives every ``relax.matmul`` and
``relax.nn.conv2d`` of an fp16 build ``out_dtype="float16"``, so the kernels
sum their reductions in fp16: on the GPU the fp16 builds then miss the parity
bar (38.8-46.9 dB against diffusers, latents off by up to 4.9e-2).
``accumulate_fp32``, run before legalization, rewrites each of them as
``astype(op(..., out_dtype="float32"), "float16")``: the cast fuses into the
kernel's epilogue, so the sum is kept in fp32 registers and the kernel still
reads and writes fp16 tensors.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

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
