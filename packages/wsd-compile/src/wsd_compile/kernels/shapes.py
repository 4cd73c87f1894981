"""Static shapes of Relax expressions, which the kernel rewrites need to apply."""

from __future__ import annotations

from collections.abc import Mapping

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


def pad_after(rank: int, after: Mapping[int, int]) -> list[int]:
    """``nn.pad``'s widths for a tensor of ``rank`` dimensions padded at the end
    of the axes in ``after`` (axis -> count; negative axes count from the last)."""
    widths = [0] * (2 * rank)
    for axis, count in after.items():
        widths[2 * (axis % rank) + 1] = count
    return widths
