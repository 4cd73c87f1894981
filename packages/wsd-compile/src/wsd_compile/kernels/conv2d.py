"""Convolutions legalized as implicit GEMM, so that the matmul schedule runs them.

A convolution becomes ``out[n, o, y, x] = sum_k W[o, k] * col[n, k, y, x]``:
a reduction over ``k = (input channel, kernel row, kernel column)`` of the
weight matrix times an im2col view of the padded input that is never stored
(the gather and the padding are inlined into the matmul's tile loads). Two
refinements, each measured on the SD 1.5 UNet: ``k`` in blocks of channels
per tap (one tap per k step, so the gather's divisions leave the inner loop),
and split-K for convolutions with too few output tiles to fill the GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax, te, tirx

from ..quantize import SCHEMES, QuantScheme, dequantize_te
from .few_channels import few_channels_conv2d, takes_few_channels
from .shapes import output_size, static_shape

#: Split-K ranges of k are at least this long.
SPLIT_K_MIN_DEPTH = 512

#: ``col(batch, k, y, x)``: an element of the im2col view of the padded input.
_Columns = Callable[[Any, Any, Any, Any], Any]
#: ``weight_at(out channel, k)``: an element of the weight matrix.
_Weights = Callable[[Any, Any], Any]


def _gemm_operands(
    data: te.Tensor,
    weight: te.Tensor,
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
    channel_block: int,
) -> tuple[_Columns, _Weights]:
    """The two operands of the implicit GEMM as functions of ``k`` (in the
    order :func:`_conv2d_implicit_gemm` describes): the im2col view, zero
    outside the input, and the weight matrix."""
    _, cin, height, width = (int(d) for d in data.shape)
    _, _, kh, kw = (int(d) for d in weight.shape)
    top, left, _, _ = padding
    sy, sx = strides
    taps = kh * kw
    blocked = channel_block > 1 and cin % channel_block == 0 and taps > 1

    def split(k: Any) -> tuple[Any, Any]:
        """``k`` -> (input channel, tap)."""
        if blocked:
            inner = k % channel_block
            outer = k // channel_block
            return (outer // taps) * channel_block + inner, outer % taps
        return k // taps, k % taps

    def col(b: Any, k: Any, y: Any, x: Any) -> Any:
        c, tap = split(k)
        iy = y * sy + tap // kw - top
        ix = x * sx + tap % kw - left
        inside = tirx.all(iy >= 0, iy < height, ix >= 0, ix < width)
        return tirx.if_then_else(inside, data[b, c, iy, ix], tirx.const(0, data.dtype))

    def weight_at(o: Any, k: Any) -> Any:
        c, tap = split(k)
        return weight[o, c, tap // kw, tap % kw]

    return col, weight_at


def _conv2d_implicit_gemm(
    data: te.Tensor,
    weight: te.Tensor,
    *,
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
    out_dtype: str,
    channel_block: int = 0,
    k_parts: int = 1,
) -> te.Tensor:
    """NCHW x OIHW convolution as ``out[n, o, y, x] = sum_k W[o, k] * col[n, k, y, x]``.

    ``k`` enumerates (input channel, kernel row, kernel column). With a
    ``channel_block`` that divides the input channels, the order is (channel
    block, tap, channel within the block) instead: a k step of that many
    elements then reads one tap of consecutive channels, so the tap and its
    bounds are the same for the whole step and the gather's divisions drop
    out of the per-element index arithmetic.

    With ``k_parts > 1`` (split-K), the result is ``k_parts`` partial sums over
    consecutive ranges of ``k``, shape ``(split, n, cout, out_h, out_w)``,
    for :func:`sum_partials` to add up."""
    n, cin, height, width = (int(d) for d in data.shape)
    cout, _, kh, kw = (int(d) for d in weight.shape)
    out_h, out_w = output_size(height, width, (kh, kw), strides, padding)
    depth = cin * kh * kw
    col, weight_at = _gemm_operands(data, weight, strides, padding, channel_block)
    if k_parts > 1:
        return _split_k_gemm(col, weight_at, (n, cout, out_h, out_w), depth, k_parts, out_dtype)

    # The operands are converted to the sum's type where they are gathered: the
    # schedule stages them in workgroup memory in that type, so an fp16 build
    # summing in fp32 converts each element once, not at every multiply-add.
    columns = te.compute(
        (n, depth, out_h, out_w), lambda *i: col(*i).astype(out_dtype), name="im2col"
    )
    matrix = te.compute(
        (cout, depth), lambda o, k: weight_at(o, k).astype(out_dtype), name="weight_matrix"
    )
    k = te.reduce_axis((0, depth), name="k")
    return te.compute(
        (n, cout, out_h, out_w),
        lambda b, o, y, x: te.sum(matrix[o, k] * columns[b, k, y, x], axis=k),
        name="conv2d_gemm",
    )


def _split_k_gemm(
    col: _Columns,
    weight_at: _Weights,
    out_shape: tuple[int, int, int, int],
    depth: int,
    parts: int,
    out_dtype: str,
) -> te.Tensor:
    """The implicit GEMM as ``parts`` partial sums over equal consecutive
    ranges of ``k``: shape ``(parts, *out_shape)``."""
    n, cout, out_h, out_w = out_shape
    chunk = depth // parts
    part_columns = te.compute(
        (parts, n, chunk, out_h, out_w),
        lambda p, b, j, y, x: col(b, p * chunk + j, y, x).astype(out_dtype),
        name="im2col",
    )
    part_matrix = te.compute(
        (parts, cout, chunk),
        lambda p, o, j: weight_at(o, p * chunk + j).astype(out_dtype),
        name="weight_matrix",
    )
    j = te.reduce_axis((0, chunk), name="k")
    return te.compute(
        (parts, n, cout, out_h, out_w),
        lambda p, b, o, y, x: te.sum(part_matrix[p, o, j] * part_columns[p, b, j, y, x], axis=j),
        name="conv2d_gemm",
    )


def sum_partials(partials: te.Tensor) -> te.Tensor:
    """The sum over the first axis of split-K partial results.

    Written out as ``p[0] + p[1] + ...`` (at most 16 terms), not as a
    reduction: TVM fuses element-wise consumers into an injective kernel but
    never into a reduction, so this way the convolution's epilogue (the cast
    to fp16 of ``accumulate_fp32``, bias, residual) is computed in the
    same kernel, one output per thread."""
    parts = int(partials.shape[0])

    def total(*i: Any) -> Any:
        value = partials[(0, *i)]
        for p in range(1, parts):
            value = value + partials[(p, *i)]
        return value

    return te.compute(tuple(partials.shape[1:]), total, name="conv2d_split_sum")


def split_depth(blocks: int, depth: int, target: int, *, step: int, min_chunk: int) -> int:
    """Into how many equal ranges of k (1: none, at most 16) a product with
    ``blocks`` output blocks and reduction ``depth`` is split so that it has at
    least ``target`` blocks: each range a multiple of ``step`` (the k step of a
    block) and at least ``min_chunk`` long. Both GEMM paths split this way
    (:func:`split_k_parts`, :func:`.subgroup_gemm.split_k`)."""
    best = 1
    for parts in range(2, 17):
        if blocks * best >= target:
            break
        chunk, rest = divmod(depth, parts)
        if rest == 0 and chunk % step == 0 and chunk >= min_chunk:
            best = parts
    return best


def split_k_parts(
    outputs_i: int, outputs_j: int, depth: int, target_tiles: int, step: int = 16
) -> int:
    """How many k ranges a matmul with ``outputs_i x outputs_j`` outputs and
    reduction ``depth`` is split into (1: not split) so that it makes at
    least ``target_tiles`` 64x64 output tiles. The ranges are equal, multiples
    of ``step`` (the k step of the tiles) and at least
    :data:`SPLIT_K_MIN_DEPTH` long; at most 16 (:func:`split_depth`)."""
    tiles = -(-outputs_i // 64) * -(-outputs_j // 64)
    return split_depth(tiles, depth, target_tiles, step=step, min_chunk=SPLIT_K_MIN_DEPTH)


@dataclass(frozen=True)
class PackedWeight:
    """A convolution's weight as packed integers and scales (:mod:`wsd_compile.quantize`)."""

    packed: relax.Expr
    scales: relax.Expr
    scheme: QuantScheme
    pack_axis: int


def _quantized_conv2d(
    data: te.Tensor,
    packed: te.Tensor,
    scales: te.Tensor,
    *,
    scheme: str,
    pack_axis: int,
    weight_shape: tuple[int, ...],
    weight_dtype: str,
    **conv: Any,
) -> te.Tensor:
    """:func:`_conv2d_implicit_gemm` of a quantized weight: the weight is a
    ``dequantize`` stage, which the matmul schedule inlines into its tile loads."""
    weight = dequantize_te(
        packed, scales, SCHEMES[scheme], pack_axis=pack_axis, shape=weight_shape, dtype=weight_dtype
    )
    return _conv2d_implicit_gemm(data, weight, **conv)


def conv2d_gemm(
    bb: relax.BlockBuilder,
    call: relax.Call,
    channel_block: int = 0,
    split_k_tiles: int = 0,
    packed: PackedWeight | None = None,
    few_channels: int = 0,
) -> relax.Expr | None:
    """``call`` (a ``conv2d``) as an implicit GEMM, or None where it does not
    apply (other layouts, groups, dilation, dynamic shapes). With ``packed``
    the GEMM reads those integers and scales instead of the call's weight.
    A convolution of at most ``few_channels`` output channels (and no
    ``packed``) is summed directly instead (:mod:`.few_channels`)."""
    attrs = call.attrs
    data, weight = call.args
    weight_shape = static_shape(weight)
    if (
        attrs.data_layout != "NCHW"
        or attrs.kernel_layout != "OIHW"
        or attrs.out_layout != "NCHW"
        or int(attrs.groups) != 1
        or any(int(d) != 1 for d in attrs.dilation)
        or static_shape(data) is None
        or weight_shape is None
    ):
        return None
    out_dtype = str(attrs.out_dtype) if attrs.out_dtype is not None else ""
    if out_dtype in ("", "void", "None"):
        out_dtype = str(data.ty.dtype)
    n, cin, height, width = static_shape(data) or []
    cout, _, kh, kw = weight_shape
    strides = (int(attrs.strides[0]), int(attrs.strides[1]))
    top, left, bottom, right = (int(p) for p in attrs.padding)
    padding = (top, left, bottom, right)
    out_h, out_w = output_size(height, width, (kh, kw), strides, padding)
    if packed is None and takes_few_channels(cout, n * out_h * out_w, cin * kh * kw, few_channels):
        return bb.call_te(
            few_channels_conv2d,
            data,
            weight,
            strides=strides,
            padding=padding,
            out_dtype=out_dtype,
            primfunc_name_hint="conv2d_few",
        )
    parts = split_k_parts(cout, n * out_h * out_w, cin * kh * kw, split_k_tiles)
    conv: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "out_dtype": out_dtype,
        "channel_block": channel_block,
        "k_parts": parts,
        "primfunc_name_hint": "conv2d",
    }
    if packed is None:
        gemm = bb.call_te(_conv2d_implicit_gemm, data, weight, **conv)
    else:
        gemm = bb.call_te(
            _quantized_conv2d,
            data,
            packed.packed,
            packed.scales,
            scheme=packed.scheme.name,
            pack_axis=packed.pack_axis,
            weight_shape=tuple(weight_shape),
            weight_dtype=str(weight.ty.dtype),
            **conv,
        )
    if parts == 1:
        return gemm
    # A kernel of its own (it cannot fuse into the matmul), which the
    # convolution's epilogue (cast, bias, residual) fuses into.
    return bb.call_te(sum_partials, bb.emit(gemm), primfunc_name_hint="conv2d_split_sum")


def legalize_map(
    channel_block: int = 0, split_k_tiles: int = 0, few_channels: int = 0
) -> dict[str, Any]:
    """Legalization overrides: convolutions as implicit GEMM (``k`` in
    blocks of ``channel_block`` channels per tap, see :func:`_conv2d_implicit_gemm`),
    those of at most ``few_channels`` output channels summed directly."""
    default = tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")

    def conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
        gemm = conv2d_gemm(bb, call, channel_block, split_k_tiles, few_channels=few_channels)
        return gemm if gemm is not None else default(bb, call)

    return {"relax.nn.conv2d": conv2d}
