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


def output_size(
    height: int,
    width: int,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> tuple[int, int]:
    """A convolution's output height and width."""
    top, left, bottom, right = padding
    out_h = (height + top + bottom - kernel[0]) // strides[0] + 1
    out_w = (width + left + right - kernel[1]) // strides[1] + 1
    return out_h, out_w
