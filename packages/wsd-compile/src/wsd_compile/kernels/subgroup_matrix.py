"""Tensor cores through WebGPU: fp16 matmuls and convolutions on subgroup matrices.

Dawn's ``chromium-experimental-subgroup-matrix`` gives WGSL 16x16x16 matrix
products with f32 sums; :mod:`.subgroup_gemm` holds the kernel that uses
them (its blocks, its WGSL, the TIR around it), and this module the rewrites
that put the path's products on it.

The page adds the ``enable chromium_experimental_subgroup_matrix;`` directive
the generator cannot print (``js/tvm_session.js``), and runs a library built
with these kernels only on a device with the feature, an f16 -> f32 16x16x16
configuration and subgroups of at most 32 (``SUBGROUP_MATRIX_REQUIRES``).

``subgroup_matrix_pass`` rewrites the fp16 matmuls that sum in fp32
(``matmul(a: f16, w: f16 [K, N], out_dtype=f32)``, what ``accumulate_fp32``
leaves) whose rows, columns and K are multiples of 16, and the fp16
convolutions that sum in fp32 (NCHW, OIHW, no groups or dilation) whose
output pixels, output channels and ``K = channels x kernel taps`` are: an
injective kernel writes the transposed im2col matrix (:func:`im2col_t`), and
:func:`.subgroup_gemm.conv_kernel` multiplies it with the weight as it is
stored, both loaded column-major, writing the NCHW result. With
``TilePolicy.gather`` (opt-in), a convolution in workgroup tiles whose output
rows are in 4s gathers the matrix from its input as it stages it instead
(implicit GEMM, :func:`.subgroup_tiles.gather_wgsl`), and no im2col kernel
runs. A convolution whose im2col matrix would be larger than
``IM2COL_MAX_BYTES`` is computed in equal ranges of output rows
(:func:`conv_row_ranges`), each an im2col and a product of its own over the
input rows it reads, joined along the rows. A product
with fewer blocks than ``SPLIT_K_WORKGROUPS`` is split along k
(:func:`.subgroup_gemm.split_k`): its blocks write partial sums that a kernel of its own
adds up, with the epilogue fused into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .attention import FUSE_ABOVE_BYTES
from .conv2d import sum_partials
from .im2col import im2col_t
from .shapes import output_size, pad_after, static_shape
from .subgroup_gemm import (
    LARGE_BLOCKS_FROM,
    SIDE,
    SMALL_BLOCKS_BELOW,
    SPLIT_K_MIN_STEPS,
    SPLIT_K_WORKGROUPS,
    SUBGROUP,
    Gemm,
    Window,
    conv_kernel,
    gemm_blocks,
    gemm_wgsl,
    matmul_kernel,
    split_k,
)
from .subgroup_tiles import NO_TILES, VECTOR, TilePolicy

__all__ = [
    "IM2COL_MAX_BYTES",
    "LARGE_BLOCKS_FROM",
    "SIDE",
    "SMALL_BLOCKS_BELOW",
    "SPLIT_K_MIN_STEPS",
    "SPLIT_K_WORKGROUPS",
    "SUBGROUP",
    "SUBGROUP_MATRIX_REQUIRES",
    "WORKGROUP_TILES_REQUIRE",
    "Gemm",
    "RowRange",
    "Window",
    "conv_gemm",
    "conv_in_rows",
    "conv_kernel",
    "conv_row_ranges",
    "gemm_blocks",
    "gemm_wgsl",
    "im2col_t",
    "matmul_gemm",
    "matmul_kernel",
    "split_k",
    "subgroup_matrix_pass",
]

#: What a device needs for the kernels (WebGPU features, and two tokens the
#: page derives from ``adapter.info``: the matrix configuration and the
#: largest subgroup size; ``js/webgpu_device.js``).
SUBGROUP_MATRIX_REQUIRES = (
    "shader-f16",
    "subgroups",
    "chromium-experimental-subgroup-matrix",
    "subgroup-matrix-f16-f32-16x16x16",
    "subgroup-size-max-32",
)
#: ... and with the shared tiles of :mod:`.subgroup_tiles`, a token the page
#: derives from the device's limits: 32 KiB of workgroup memory.
WORKGROUP_TILES_REQUIRE = ("workgroup-storage-32k",)
#: The largest im2col matrix a convolution may write (fp16 bytes): larger ones
#: (the VAE decoder's at 256x256 and 512x512, SDXL's up blocks at 128x128) are
#: computed in ranges of output rows, so that no buffer of the path is larger
#: than the binding limit wsd aims for (256 MiB).
IM2COL_MAX_BYTES = FUSE_ABOVE_BYTES


def conv_gemm(
    call: relax.Call,
    split_k_workgroups: int = 0,
    max_bytes: int | None = IM2COL_MAX_BYTES,
    large_blocks_from: int = LARGE_BLOCKS_FROM,
    tiles: TilePolicy = NO_TILES,
) -> tuple[Gemm, dict[str, Any]] | None:
    """The blocking of ``call`` (an fp16 ``conv2d`` summing in fp32) as a GEMM,
    and the im2col arguments; None where the kernel does not apply (other
    layouts, groups, dilation, dynamic shapes, sizes not in 16s, an im2col
    matrix larger than ``max_bytes``: None for no limit)."""
    attrs = call.attrs
    data, weight = call.args
    x_shape, w_shape = static_shape(data), static_shape(weight)
    dtypes = (str(data.ty.dtype), str(weight.ty.dtype), str(call.ty.dtype))
    if (
        dtypes != ("float16", "float16", "float32")
        or (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW")
        or int(attrs.groups) != 1
        or any(int(d) != 1 for d in attrs.dilation)
        or not x_shape
        or not w_shape
    ):
        return None
    n, cin, height, width = x_shape
    cout, _, kh, kw = w_shape
    strides = (int(attrs.strides[0]), int(attrs.strides[1]))
    top, left, bottom, right = (int(p) for p in attrs.padding)
    padding = (top, left, bottom, right)
    out_h, out_w = output_size(height, width, (kh, kw), strides, padding)
    g = gemm_blocks(
        n * out_h * out_w,
        cout,
        cin * kh * kw,
        conv=True,
        split_k_workgroups=split_k_workgroups,
        large_blocks_from=large_blocks_from,
        pixels=out_h * out_w,
        tiles=tiles,
    )
    if g is None or (max_bytes is not None and g.m * g.k * 2 > max_bytes):
        return None
    if g.tiled and tiles.gather and out_w % VECTOR == 0 and n * cin * height * width < 2**31:
        g = replace(g, window=Window(n, cin, height, width, kh, kw, *strides, top, left, out_w))
    return g, {"kernel": (kh, kw), "strides": strides, "padding": padding}


@dataclass(frozen=True)
class RowRange:
    """Output rows ``[start, stop)`` of a convolution, and what they read: input
    rows ``[first, last)`` with ``top`` and ``bottom`` rows of zero padding."""

    start: int
    stop: int
    first: int
    last: int
    top: int
    bottom: int


def conv_row_ranges(call: relax.Call, max_bytes: int) -> list[RowRange] | None:
    """The equal ranges of output rows in which ``call`` (a convolution the
    kernel takes, but whose im2col matrix is larger than ``max_bytes``) is
    computed: the fewest whose im2col matrices each fit, with whole 16-row
    blocks of pixels. None where it fits whole, the kernel does not apply,
    or no split fits."""
    found = conv_gemm(call, max_bytes=None)
    if found is None or found[0].m * found[0].k * 2 <= max_bytes:
        return None
    g, im2col = found
    height = int(call.args[0].ty.shape[2])
    kh, stride, (top, _, bottom, _) = im2col["kernel"][0], im2col["strides"][0], im2col["padding"]
    out_h, _ = output_size(height, 1, (kh, 1), (stride, 1), (top, 0, bottom, 0))
    per_row = g.m // out_h
    for chunks in range(2, out_h + 1):
        rows = out_h // chunks
        if out_h % chunks or (per_row * rows) % SIDE or per_row * rows * g.k * 2 > max_bytes:
            continue
        ranges = []
        for start in range(0, out_h, rows):
            # Input rows read by output rows start .. start + rows - 1, clipped to the image.
            low, high = start * stride - top, (start + rows - 1) * stride - top + kh
            first, last = max(low, 0), min(high, height)
            ranges.append(RowRange(start, start + rows, first, last, first - low, high - last))
        return ranges
    return None


def matmul_gemm(
    a_shape: list[int],
    w_shape: list[int] | None,
    split_k_workgroups: int = 0,
    large_blocks_from: int = LARGE_BLOCKS_FROM,
    tiles: TilePolicy = NO_TILES,
) -> Gemm | None:
    """The blocking of ``matmul(a, w)`` for these static shapes: ``w`` a
    ``[k, n]`` weight (rows: ``a``'s leading dimensions), or ``w`` with ``a``'s
    leading dimensions (a batch of products, e.g. attention's); None for
    other shapes (broadcasts) and sizes that do not tile."""
    if w_shape is None or len(w_shape) < 2 or len(a_shape) < 2 or a_shape[-1] != w_shape[-2]:
        return None
    k, n = w_shape[-2:]
    if len(w_shape) == 2:
        m, batch = math.prod(a_shape[:-1]), 1
    elif list(w_shape[:-2]) == list(a_shape[:-2]):
        m, batch = a_shape[-2], math.prod(a_shape[:-2])
    else:
        return None
    g = gemm_blocks(
        m,
        n,
        k,
        batch=batch,
        split_k_workgroups=split_k_workgroups,
        large_blocks_from=large_blocks_from,
        tiles=tiles,
    )
    # blockIdx.y counts (product, part, row block); WebGPU allows 65535 of them.
    return g if g is None or g.workgroups // (g.n // g.cols) <= 65535 else None


@mutator
class _Rewriter(PyExprMutator):  # type: ignore[misc]
    def __init__(
        self,
        mod: tvm.IRModule,
        split_k_workgroups: int,
        im2col_max_bytes: int,
        large_blocks_from: int,
        tiles: TilePolicy,
    ) -> None:
        super().__init__(mod)
        self.tiles = tiles
        self.split_k_workgroups = split_k_workgroups
        self.im2col_max_bytes = im2col_max_bytes
        self.large_blocks_from = large_blocks_from
        self.matmul = tvm.ir.Op.get("relax.matmul")
        self.conv2d = tvm.ir.Op.get("relax.nn.conv2d")
        self.kernels: dict[tuple[Any, ...], relax.GlobalVar] = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op == self.conv2d:
            return self._conv(call)
        if call.op != self.matmul:
            return call
        a, w = call.args
        a_shape, w_shape, out_shape = static_shape(a), static_shape(w), static_shape(call)
        dtypes = (str(a.ty.dtype), str(w.ty.dtype), str(call.ty.dtype))
        if dtypes != ("float16", "float16", "float32") or not a_shape or not out_shape:
            return call
        if w_shape is not None and len(w_shape) > 2 and (w_shape[-2] % SIDE or w_shape[-1] % SIDE):
            return self._padded(call, a_shape, w_shape, out_shape)
        return self._matmul(call, a, w, a_shape, w_shape, out_shape)

    def _matmul(
        self,
        call: relax.Call,
        a: relax.Expr,
        w: relax.Expr,
        a_shape: list[int],
        w_shape: list[int] | None,
        out_shape: list[int],
    ) -> relax.Expr:
        g = matmul_gemm(
            a_shape, w_shape, self.split_k_workgroups, self.large_blocks_from, self.tiles
        )
        if g is None or w_shape is None:
            return call
        key = (g, tuple(a_shape), tuple(w_shape), tuple(out_shape))
        if key not in self.kernels:
            kernel = matmul_kernel(g, tuple(a_shape), tuple(w_shape), tuple(out_shape))
            self.kernels[key] = self.builder_.add_func(kernel, "subgroup_matrix_matmul")
        return self._call(g, self.kernels[key], [a, w], out_shape)

    def _padded(
        self, call: relax.Call, a_shape: list[int], w_shape: list[int], out_shape: list[int]
    ) -> relax.Expr:
        """A batched product (attention's) whose k or n is not in 16s (a head of
        40, 77 text tokens) on zero-padded operands: padding k adds zeros to
        the sums, padding n adds columns that are sliced off. The pads fuse
        into the kernels that write the operands (the head transposes)."""
        k, n = w_shape[-2:]
        pad_k, pad_n = -k % SIDE, -n % SIDE
        a_padded, w_padded = [*a_shape[:-1], k + pad_k], [*w_shape[:-2], k + pad_k, n + pad_n]
        if matmul_gemm(a_padded, w_padded) is None:
            return call
        a, w = call.args
        if pad_k:  # (attention pads its keys itself: then only n is padded here)
            a = self.builder_.emit(relax.op.nn.pad(a, pad_after(len(a_shape), {-1: pad_k})))
        widths = pad_after(len(w_shape), {-2: pad_k, -1: pad_n})
        w = self.builder_.emit(relax.op.nn.pad(w, widths))
        padded_out = [*out_shape[:-1], n + pad_n]
        out = self._matmul(call, a, w, a_padded, w_padded, padded_out)
        if pad_n:
            out = self.builder_.emit(out)
            return relax.op.strided_slice(out, [len(out_shape) - 1], [0], [n])
        return out

    def _call(
        self, g: Gemm, kernel: relax.GlobalVar, args: list[relax.Expr], out_shape: list[int]
    ) -> relax.Expr:
        """``kernel`` on ``args``; split along k, its partial results added up by
        a kernel of its own, which the epilogue (cast, bias, residual) fuses into."""
        if g.parts == 1:
            return relax.call_tir(kernel, args, relax.TensorType(out_shape, "float32"))
        partials = relax.TensorType([g.parts, *out_shape], "float32")
        summed = self.builder_.emit(relax.call_tir(kernel, args, partials))
        return self.builder_.call_te(sum_partials, summed, primfunc_name_hint="split_k_sum")

    def _conv(self, call: relax.Call) -> relax.Expr:
        found = conv_gemm(
            call,
            self.split_k_workgroups,
            self.im2col_max_bytes,
            self.large_blocks_from,
            self.tiles,
        )
        if found is None:
            ranges = conv_row_ranges(call, self.im2col_max_bytes)
            return call if ranges is None else self._conv_rows(call, ranges)
        g, im2col = found
        data, weight = call.args
        w_shape, out_shape = static_shape(weight) or [], static_shape(call) or []
        if g.window is not None:  # the kernel gathers A^T from the input itself
            columns = data
        else:
            columns = self.builder_.emit(
                self.builder_.call_te(im2col_t, data, primfunc_name_hint="im2col", **im2col)
            )
        key = ("conv", g, tuple(w_shape), tuple(out_shape))
        if key not in self.kernels:
            kernel = conv_kernel(g, tuple(w_shape), tuple(out_shape))
            self.kernels[key] = self.builder_.add_func(kernel, "subgroup_matrix_conv2d")
        return self._call(g, self.kernels[key], [columns, weight], out_shape)

    def _conv_rows(self, call: relax.Call, ranges: list[RowRange]) -> relax.Expr:
        """``call`` as one kernel per range of output rows (:func:`conv_in_rows`),
        the results joined along the rows (which the epilogue fuses into)."""
        return relax.op.concat(conv_in_rows(self.builder_, call, ranges, self._conv), axis=2)


def conv_in_rows(
    bb: relax.BlockBuilder,
    call: relax.Call,
    ranges: list[RowRange],
    lower: Callable[[relax.Call], relax.Expr] = lambda part: part,
) -> list[relax.Var]:
    """The results of ``call``'s ``ranges`` of output rows, emitted into ``bb``
    one range after the other: each a convolution (as ``lower`` rewrites it)
    on the input rows it reads (a slice, which fuses into its im2col kernel,
    with the element-wise arithmetic that made the input where
    :func:`.row_slices.sink_row_slices` then takes the slice before it),
    padded where the range reaches the image's edges. Emitted in this order,
    each range's im2col matrix is consumed before the next is written, so the
    memory plan gives them all one buffer."""
    attrs, (data, weight) = call.attrs, call.args
    _, left, _, right = (int(p) for p in attrs.padding)
    parts = []
    for r in ranges:
        rows = bb.emit(relax.op.strided_slice(data, [2], [r.first], [r.last]))
        part = relax.op.nn.conv2d(
            rows,
            weight,
            strides=attrs.strides,
            padding=(r.top, left, r.bottom, right),
            dilation=attrs.dilation,
            data_layout="NCHW",
            kernel_layout="OIHW",
            out_layout="NCHW",
            out_dtype=str(call.ty.dtype),
        )
        parts.append(bb.emit(lower(bb.normalize(part))))
    return parts


def subgroup_matrix_pass(
    split_k_workgroups: int = SPLIT_K_WORKGROUPS,
    im2col_max_bytes: int = IM2COL_MAX_BYTES,
    large_blocks_from: int = LARGE_BLOCKS_FROM,
    tiles: TilePolicy = NO_TILES,
) -> tvm.transform.Pass:
    """Every fp16 matmul and convolution summing in fp32 whose shapes tile into
    16x16x16 matrices, as a :func:`.subgroup_gemm.matmul_kernel` or
    :func:`.subgroup_gemm.conv_kernel` call (run after ``accumulate_fp32``);
    those with fewer blocks than ``split_k_workgroups`` split along k (0:
    none); convolutions whose im2col
    matrix would be larger than ``im2col_max_bytes`` in ranges of output rows
    (:func:`conv_row_ranges`); those making at least ``large_blocks_from``
    blocks of 64 x 64 in them (:func:`.subgroup_gemm.gemm_blocks`); those
    ``tiles`` selects in workgroup tiles (:mod:`.subgroup_tiles`)."""

    @tvm.transform.module_pass(opt_level=0, name="wsd.SubgroupMatrix")  # type: ignore[untyped-decorator]
    def rewrite(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        rewriter = _Rewriter(mod, split_k_workgroups, im2col_max_bytes, large_blocks_from, tiles)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
        result: tvm.IRModule = rewriter.builder_.get()
        return result

    pass_: tvm.transform.Pass = rewrite
    return pass_
