"""Static shapes of Relax expressions, which the kernel rewrites need to apply."""

from __future__ import annotations

from tvm import relax, tirx


def static_shape(expr: relax.Expr) -> list[int] | None:
    """``expr``'s shape if it is a tensor whose every dimension is known, else None."""
    sinfo = expr.ty
    if not isinstance(sinfo, relax.TensorType) or sinfo.shape is None:
        return None
    dims = []
    for dim in sinfo.shape.values:
        if not isinstance(dim, tirx.IntImm):
            return None
        dims.append(int(dim.value))
    return dims
