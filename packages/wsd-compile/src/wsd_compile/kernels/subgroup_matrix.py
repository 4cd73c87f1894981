"""Tensor cores through WebGPU: fp16 matmuls on subgroup matrices.

Dawn's ``chromium-experimental-subgroup-matrix`` gives WGSL 16x16x16 matrix
products with f32 sums (``subgroup_matrix_left/right/result``,
``subgroupMatrixLoad``, ``subgroupMatrixMultiplyAccumulate``,
``subgroupMatrixStore``); TVM's WebGPU code generator has no such types. So
the kernel here is TIR whose matrix part is WGSL text, emitted as the name of
an ``call_extern`` statement that ends in a line comment (the comment swallows
the argument list the generator appends):

- one workgroup is one subgroup (32 invocations) and owns a ``(16 tm) x (16 tn)``
  block of the result: ``tm x tn`` accumulators, A and B tiles loaded
  straight from storage, 16 columns of K at a time (small blocks: one step
  ahead of the products);
- the accumulators are stored straight to the f32 result (``subgroupMatrixStore``:
  row-major for a matmul, column-major into NCHW for a convolution). TVM binds
  a buffer writable only where TIR stores to it, so the TIR holds one store
  that never runs. A convolution whose images are not whole 16-pixel
  matrices (tiny ones) goes through workgroup memory instead, and the 32
  invocations write the tile with TIR stores. The ``astype`` to fp16 and the
  epilogue that follow are kernels of their own.

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
:func:`conv_kernel` multiplies it with the weight as it is stored, both loaded
column-major, writing the NCHW result. A convolution whose im2col matrix would
be larger than ``IM2COL_MAX_BYTES`` is computed in equal ranges of output rows
(:func:`conv_row_ranges`), each an im2col and a product of its own over the
input rows it reads, joined along the rows. A product
with fewer blocks than ``SPLIT_K_WORKGROUPS`` is split along k
(:func:`split_k`): its blocks write partial sums that a kernel of its own
adds up, with the epilogue fused into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import tvm
from tvm import relax, te, tirx
from tvm.relax.expr_functor import PyExprMutator, mutator
from tvm.script import tirx as T

from .attention import FUSE_ABOVE_BYTES
from .conv2d import output_size, split_depth, sum_partials
from .shapes import static_shape

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
#: The tile of one subgroup matrix, and the invocations of a workgroup (one subgroup).
SIDE = 16
SUBGROUP = 32
#: The largest im2col matrix a convolution may write (fp16 bytes): larger ones
#: (the VAE decoder's at 256x256 and 512x512, SDXL's up blocks at 128x128) are
#: computed in ranges of output rows, so that no buffer of the path is larger
#: than the binding limit wsd aims for (256 MiB).
IM2COL_MAX_BYTES = FUSE_ABOVE_BYTES
#: The names the WGSL text refers to: TVM prints a buffer ``X`` of the
#: signature as ``X_ptr`` and a workgroup buffer by its name.
_A, _B, _C, _TILE = "A_ptr", "B_ptr", "C_ptr", "wsd_tile"
#: Products that make at least this many blocks of 64 x 64 are computed in
#: them (:func:`gemm_blocks`).
LARGE_BLOCKS_FROM = 320
#: Products with fewer blocks of 32 x 64 than this are computed in blocks of
#: 32 x 32 (:func:`gemm_blocks`).
SMALL_BLOCKS_BELOW = 512
#: The fewest 16-column steps of k a split-K block sums (:func:`split_k`).
SPLIT_K_MIN_STEPS = 16
#: Products with fewer blocks than this are split along k: the H200 has 132
#: multiprocessors, so about 8 subgroups each.
SPLIT_K_WORKGROUPS = 1024


@dataclass(frozen=True)
class Gemm:
    """``C[m, n] = sum_k A[m, k] B[k, n]`` in blocks of ``(16 tm) x (16 tn)``.

    ``conv``: the convolution form: A stored transposed (``[k, m]``, as
    :func:`im2col_t` writes it), B transposed (``[n, k]``: the OIHW weight as
    it is), and the result in NCHW (``m`` is image, row, column).
    ``parts``: split-K; each block sums one of ``parts`` equal ranges of k
    into its own partial result (``[parts, ...]``), which a kernel of its own
    adds up (``sum_partials``).
    ``batch``: ``batch`` independent products, A ``[batch, m, k]`` and B
    ``[batch, k, n]`` (attention's ``Q K^T`` and ``P V``).
    ``m`` need not be a multiple of the block's rows (a matmul's, not a
    convolution's): the last row block starts at ``m - rows``, overlapping
    the one before it, whose rows it computes again to the same values.
    ``pixels``: a convolution's output pixels per image (the rows of ``m``
    one image holds).
    """

    m: int
    n: int
    k: int
    tm: int
    tn: int
    conv: bool = False
    parts: int = 1
    batch: int = 1
    pixels: int = 0

    @property
    def direct(self) -> bool:
        """Whether the matrices are stored straight to the result (each 16x16
        matrix lies in one image); else through workgroup memory."""
        return not self.conv or (self.pixels > 0 and self.pixels % SIDE == 0)

    @property
    def rows(self) -> int:
        return SIDE * self.tm

    @property
    def cols(self) -> int:
        return SIDE * self.tn

    @property
    def row_blocks(self) -> int:
        return -(-self.m // self.rows)

    @property
    def ragged(self) -> bool:
        """Whether the last row block overlaps the one before it."""
        return self.m % self.rows != 0

    @property
    def workgroups(self) -> int:
        return self.row_blocks * (self.n // self.cols) * self.parts * self.batch


def gemm_blocks(
    m: int,
    n: int,
    k: int,
    *,
    conv: bool = False,
    batch: int = 1,
    split_k_workgroups: int = 0,
    large_blocks_from: int = LARGE_BLOCKS_FROM,
) -> Gemm | None:
    """The blocking of an ``m x k`` by ``k x n`` product (``batch`` of them),
    or None if it does not tile into 16x16x16 matrices. On the H200, with
    the matrices stored straight to the result: 64 x 64 blocks where a product
    makes at least ``large_blocks_from`` of them (SD 1.5's 64x64 and 32x32
    levels, the VAE decoder); else 32 x 64, and 32 x 32 for a product with
    fewer than ``SMALL_BLOCKS_BELOW`` of those (the 16x16 and 8x8 levels,
    the text tokens' projections), twice as many (``docs/kernels.md``). 48
    columns where n is in 48s, not 64s (heads of 40, padded). A matmul's
    ``m`` need only be at least 16 (the 2 x 77 rows of the text tokens): its
    last block overlaps. A product with fewer blocks than
    ``split_k_workgroups`` is split along k (:func:`split_k`)."""
    if k % SIDE or n % SIDE or m < SIDE or (conv and m % SIDE):
        return None
    tm = 2 if m % (2 * SIDE) == 0 or (m % SIDE and m >= 2 * SIDE) else 1
    tn = next(t for t in (4, 3, 2, 1) if n % (t * SIDE) == 0)
    g = Gemm(m, n, k, tm, tn, conv, batch=batch)
    large = replace(g, tm=4)
    if tm == 2 and tn == 4 and m % (4 * SIDE) == 0 and large.workgroups >= large_blocks_from:
        g = large
    elif g.workgroups < SMALL_BLOCKS_BELOW and tn == 4:
        g = replace(g, tn=2)
    return replace(g, parts=split_k(g, split_k_workgroups))


def split_k(g: Gemm, workgroups: int) -> int:
    """Into how many ranges of k ``g`` is split so that it has at least
    ``workgroups`` blocks (1: not split). One block is one subgroup, so a deep
    product with few blocks (the UNet's 8x8 and 16x16 levels: 80 to 320)
    leaves most of the GPU idle, each subgroup waiting on its loads; the
    ranges are equal, whole 16-column steps, at least ``SPLIT_K_MIN_STEPS``
    of them, and at most 16 (:func:`.conv2d.split_depth`)."""
    blocks = g.workgroups // g.parts
    return split_depth(blocks, g.k, workgroups, step=SIDE, min_chunk=SIDE * SPLIT_K_MIN_STEPS)


def _load(g: Gemm, operand: str, index: int, k: str = "wsd_k") -> str:
    """The WGSL that loads the ``index``-th 16x16 matrix of ``operand`` (``A``:
    along the rows, ``B``: along the columns) at column ``k`` of K. In the
    convolution form both are stored transposed, so both load column-major."""
    if operand == "A":
        kind, start, other, buffer = "left", f"wsd_m0 + {SIDE * index}u", g.m, _A
    else:
        kind, start, other, buffer = "right", f"wsd_n0 + {SIDE * index}u", g.n, _B
    matrix = f"subgroup_matrix_{kind}<f16, 16, 16>"
    # Stored A [m, k] and B^T [n, k] have k contiguous; A^T [k, m] and B [k, n] do not.
    along_k = operand == ("B" if g.conv else "A")
    if along_k:
        offset, stride = f"({start}) * {g.k}u + {k}", g.k
    else:
        offset, stride = f"{k} * {other}u + {start}", other
    if g.batch > 1:
        size = g.m * g.k if operand == "A" else g.k * g.n
        offset = f"wsd_b * {size}u + {offset}"
    return f"subgroupMatrixLoad<{matrix}>(&{buffer}, {offset}, {str(g.conv).lower()}, {stride}u)"


def _blocks_wgsl(g: Gemm) -> list[str]:
    """Where the block starts: its column and row, its range of k, its product."""
    # The column block as TVM computes blockIdx.x (its grid packing).
    lines = [f"let wsd_n0 = (blockIdx.z * gridDim.x + blockIdx.x) * {g.cols}u;"]
    # blockIdx.y is (product, part, row block), as the output loop of the TIR binds it.
    rb = g.row_blocks
    row = "blockIdx.y" if g.parts == g.batch == 1 else f"(blockIdx.y % {rb}u)"
    row = f"{row} * {g.rows}u"
    if g.ragged:
        row = f"min({row}, {g.m - g.rows}u)"
    lines.append(f"let wsd_m0 = {row};")
    if g.parts > 1:
        part = f"(blockIdx.y / {rb}u)" if g.batch == 1 else f"(blockIdx.y / {rb}u % {g.parts}u)"
        lines.append(f"let wsd_part = {part};")
        lines.append(f"let wsd_k0 = wsd_part * {g.k // g.parts}u;")
    if g.batch > 1:
        lines.append(f"let wsd_b = blockIdx.y / {rb * g.parts}u;")
    return lines


def gemm_wgsl(g: Gemm) -> str:
    """The matrix part of the kernel, as WGSL statements ending in a line comment.

    The loads run one step ahead of the products: the matrices of step
    ``wsd_k`` load while those of the step before multiply, so a subgroup
    waits on memory less (up to 1.6x faster on the H200's small products;
    with 64 x 64 blocks, 4 x 4 accumulators, faster than loading and then
    multiplying each step in the UNet and the VAE)."""
    pairs = [(i, j) for i in range(g.tm) for j in range(g.tn)]
    start, end = ("0u", f"{g.k}u") if g.parts == 1 else ("wsd_k0", f"wsd_k0 + {g.k // g.parts}u")
    operands = [("a", "A", i) for i in range(g.tm)] + [("b", "B", j) for j in range(g.tn)]
    products = [
        f"wsd_acc_{i}_{j} = subgroupMatrixMultiplyAccumulate("
        f"wsd_a_{i}, wsd_b_{j}, wsd_acc_{i}_{j});"
        for i, j in pairs
    ]
    steps = [
        *(f"var wsd_{x}_{i} = {_load(g, op, i, start)};" for x, op, i in operands),
        f"for (var wsd_k = {start} + 16u; wsd_k < {end}; wsd_k += 16u) {{",
        *(f"  let wsd_next_{x}_{i} = {_load(g, op, i)};" for x, op, i in operands),
        *(f"  {p}" for p in products),
        *(f"  wsd_{x}_{i} = wsd_next_{x}_{i};" for x, _, i in operands),
        "}",
        *products,
    ]
    lines = [
        *_blocks_wgsl(g),
        *(f"var wsd_acc_{i}_{j} = subgroup_matrix_result<f32, 16, 16>();" for i, j in pairs),
        *steps,
        *(_stores_direct(g, pairs) if g.direct else _stores_tile(g, pairs)),
        "//",
    ]
    return "\n  ".join(lines)


def _stores_direct(g: Gemm, pairs: list[tuple[int, int]]) -> list[str]:
    """The accumulators stored straight to the f32 result: row-major into a
    ``[m, n]`` matmul result; column-major into an NCHW one, where a matrix's
    16 rows are 16 adjacent pixels of one image and its columns channels."""
    size = g.m * g.n * g.batch
    base = "".join(
        [
            f"wsd_part * {size}u + " if g.parts > 1 else "",
            f"wsd_b * {g.m * g.n}u + " if g.batch > 1 else "",
        ]
    )
    if not g.conv:
        return [
            f"subgroupMatrixStore(&{_C}, {base}(wsd_m0 + {SIDE * i}u) * {g.n}u + wsd_n0 + "
            f"{SIDE * j}u, wsd_acc_{i}_{j}, false, {g.n}u);"
            for i, j in pairs
        ]
    p = g.pixels
    lines = [f"let wsd_r{i} = wsd_m0 + {SIDE * i}u;" for i in range(g.tm)]
    return lines + [
        f"subgroupMatrixStore(&{_C}, {base}(wsd_r{i} / {p}u * {g.n}u + wsd_n0 + {SIDE * j}u) "
        f"* {p}u + wsd_r{i} % {p}u, wsd_acc_{i}_{j}, true, {p}u);"
        for i, j in pairs
    ]


def _stores_tile(g: Gemm, pairs: list[tuple[int, int]]) -> list[str]:
    """The accumulators stored to workgroup memory, for the TIR to write:
    row-major for a ``[m, n]`` result; column-major (rows contiguous) for NCHW."""
    return [
        *(
            f"subgroupMatrixStore(&{_TILE}, {SIDE * j * g.rows + SIDE * i}u, wsd_acc_{i}_{j}, "
            f"true, {g.rows}u);"
            if g.conv
            else f"subgroupMatrixStore(&{_TILE}, {SIDE * i * g.cols + SIDE * j}u, "
            f"wsd_acc_{i}_{j}, false, {g.cols}u);"
            for i, j in pairs
        ),
        "workgroupBarrier();",
    ]


def _gemm_kernel(
    g: Gemm, a_shape: tuple[int, ...], b_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tvm.tirx.PrimFunc:
    """The TIR around :func:`gemm_wgsl`: A of ``a_shape`` and B of ``b_shape`` (the
    operands as stored), the f32 result of ``out_shape`` (with a leading
    ``parts`` axis when split). Where the matrices are not stored straight to
    it (``g.direct``), the 32 invocations write the tile with coalesced stores,
    column-major for a convolution, so that they write 32 adjacent pixels of
    one channel."""
    text = gemm_wgsl(g)
    rows, cols, tile = g.rows, g.cols, g.rows * g.cols
    per_thread, row_blocks = tile // SUBGROUP, g.row_blocks
    result = (g.parts, *out_shape) if g.parts > 1 else out_shape
    # The result as [part, m, n], or [part, image, channel, pixel] for NCHW.
    pixels = out_shape[2] * out_shape[3] if g.conv else g.m
    flat_shape = (g.parts, g.m // pixels, g.n, pixels) if g.conv else (g.parts, g.batch, g.m, g.n)

    def at(by: Any, bx: Any, e: Any) -> tuple[Any, ...]:
        """The result index of element ``e`` of the tile of block (by, bx)."""
        r, c = (e % rows, e // rows) if g.conv else (e // cols, e % cols)
        part, batch = by // row_blocks % g.parts, by // (row_blocks * g.parts)
        row0 = by % row_blocks * rows
        row = (T.min(row0, g.m - rows) if g.ragged else row0) + r
        col = bx * cols + c
        return (part, row // pixels, col, row % pixels) if g.conv else (part, batch, row, col)

    direct, zero = g.direct, (0,) * len(result)

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(a: T.handle, b: T.handle, c: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        # The WGSL text names A, B and C (TVM prints them as A_ptr, B_ptr, C_ptr).
        A = T.match_buffer(a, a_shape, "float16")  # noqa: N806
        B = T.match_buffer(b, b_shape, "float16")  # noqa: N806
        C = T.match_buffer(c, result, "float32")  # noqa: N806
        for bx in T.thread_binding(g.n // cols, thread="blockIdx.x"):
            for by in T.thread_binding(row_blocks * g.parts * g.batch, thread="blockIdx.y"):
                for tx in T.thread_binding(SUBGROUP, thread="threadIdx.x"):
                    if direct:
                        # The WGSL stores the result itself. TVM binds a buffer
                        # writable only where TIR stores to it: one store that
                        # never runs, under a condition TVM cannot evaluate
                        # (all(bool(0)), WGSL's own false).
                        T.evaluate(T.call_extern("int32", text, A.data, B.data, C.data))
                        if T.call_extern("bool", "all", T.bool(False)):
                            C[zero] = T.float32(0)
                    else:
                        flat = T.decl_buffer(flat_shape, "float32", data=C.data)
                        wsd_tile = T.alloc_buffer((tile,), "float32", scope="shared")
                        T.evaluate(T.call_extern("int32", text, A.data, B.data, wsd_tile.data))
                        for i in T.unroll(per_thread):
                            flat[at(by, bx, i * SUBGROUP + tx)] = wsd_tile[i * SUBGROUP + tx]

    return kernel


def matmul_kernel(
    g: Gemm, a_shape: tuple[int, ...], b_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tvm.tirx.PrimFunc:
    """The kernel for ``g``: A of ``a_shape`` (rows are its leading dimensions
    flattened), B of ``b_shape`` (``[k, n]``, or ``[..., k, n]`` with A's
    leading dimensions when ``g.batch > 1``), the f32 result of ``out_shape``."""
    return _gemm_kernel(g, a_shape, b_shape, out_shape)


def conv_kernel(g: Gemm, w_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tvm.tirx.PrimFunc:
    """The convolution kernel for ``g`` (``g.conv``): A^T ``[k, m]`` (the
    im2col of :func:`im2col_t`), the OIHW weight ``w_shape`` read as B^T
    ``[n, k]``, the f32 NCHW result of ``out_shape``."""
    return _gemm_kernel(g, (g.k, g.m), w_shape, out_shape)


def im2col_t(
    data: te.Tensor,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> te.Tensor:
    """The transposed im2col matrix of an NCHW input: ``[c kh kw, n oh ow]``,
    zero outside the input. ``k`` is (channel, kernel row, kernel column), as
    an OIHW weight flattens; ``m`` (image, row, column) is contiguous, so the
    kernel that writes it reads the input along its rows."""
    n, cin, height, width = (int(d) for d in data.shape)
    kh, kw = kernel
    top, left, _, _ = padding
    out_h, out_w = output_size(height, width, kernel, strides, padding)
    taps, pixels = kh * kw, out_h * out_w

    def at(k: Any, m: Any) -> Any:
        c, tap = k // taps, k % taps
        b, y, x = m // pixels, m % pixels // out_w, m % out_w
        iy = y * strides[0] + tap // kw - top
        ix = x * strides[1] + tap % kw - left
        inside = tirx.all(iy >= 0, iy < height, ix >= 0, ix < width)
        return tirx.if_then_else(inside, data[b, c, iy, ix], tirx.const(0, data.dtype))

    return te.compute((cin * taps, n * pixels), at, name="im2col")


def conv_gemm(
    call: relax.Call,
    split_k_workgroups: int = 0,
    max_bytes: int | None = IM2COL_MAX_BYTES,
    large_blocks_from: int = LARGE_BLOCKS_FROM,
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
    )
    g = None if g is None else replace(g, pixels=out_h * out_w)
    if g is None or (max_bytes is not None and g.m * g.k * 2 > max_bytes):
        return None
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
    ) -> None:
        super().__init__(mod)
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
        g = matmul_gemm(a_shape, w_shape, self.split_k_workgroups, self.large_blocks_from)
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
        lead = [0, 0] * (len(a_shape) - 1)
        a = self.builder_.emit(relax.op.nn.pad(call.args[0], [*lead, 0, pad_k]))
        w = self.builder_.emit(relax.op.nn.pad(call.args[1], [*lead[:-2], 0, pad_k, 0, pad_n]))
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
            call, self.split_k_workgroups, self.im2col_max_bytes, self.large_blocks_from
        )
        if found is None:
            ranges = conv_row_ranges(call, self.im2col_max_bytes)
            return call if ranges is None else self._conv_rows(call, ranges)
        g, im2col = found
        data, weight = call.args
        w_shape, out_shape = static_shape(weight) or [], static_shape(call) or []
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
    on the input rows it reads (a slice, which fuses into its im2col kernel),
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
) -> tvm.transform.Pass:
    """Every fp16 matmul and convolution summing in fp32 whose shapes tile into
    16x16x16 matrices, as a :func:`matmul_kernel` or :func:`conv_kernel` call
    (run after ``accumulate_fp32``); those with fewer blocks than
    ``split_k_workgroups`` split along k (0: none); convolutions whose im2col
    matrix would be larger than ``im2col_max_bytes`` in ranges of output rows
    (:func:`conv_row_ranges`); those making at least ``large_blocks_from``
    blocks of 64 x 64 in them (:func:`gemm_blocks`)."""

    @tvm.transform.module_pass(opt_level=0, name="wsd.SubgroupMatrix")  # type: ignore[untyped-decorator]
    def rewrite(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        rewriter = _Rewriter(mod, split_k_workgroups, im2col_max_bytes, large_blocks_from)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
        result: tvm.IRModule = rewriter.builder_.get()
        return result

    pass_: tvm.transform.Pass = rewrite
    return pass_
