"""What a Relax expression is, asked the same way by wsd's Relax rewrites."""

from __future__ import annotations

import tvm
from tvm import relax


def op_name(expr: relax.Expr) -> str:
    """The name of the operator ``expr`` calls (``"relax.matmul"``, say);
    ``""`` when ``expr`` is not a call, or calls a function or kernel."""
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return str(expr.op.name)
    return ""


def tensor_dtype(expr: relax.Expr) -> str:
    """The element type of the tensor ``expr`` is (``"float16"``, say);
    ``""`` when it is not a tensor."""
    ty = expr.ty
    return str(ty.dtype) if isinstance(ty, relax.TensorType) else ""
