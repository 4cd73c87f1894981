"""The tensor-core GEMM kernel of the subgroup-matrix path: blocks, WGSL and TIR.

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

The rewrites that use it (matmuls, convolutions through im2col, in ranges
of rows) are in :mod:`.subgroup_matrix`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import tvm
from tvm.script import tirx as T

from .conv2d import split_depth
from .subgroup_tiles import NO_TILES, TilePolicy, tiles_fit, tiles_wgsl, workgroup_halves

#: The tile of one subgroup matrix, and the invocations of a workgroup (one subgroup).
SIDE = 16
SUBGROUP = 32
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
class Window:
    """A convolution's input as a GEMM's A^T is gathered from it (implicit
    GEMM, :mod:`.subgroup_tiles`): ``images x channels x height x width``
    (NCHW, fp16), the kernel's ``kh x kw`` taps at strides ``sy, sx`` over the
    input padded by ``top`` rows and ``left`` columns, ``out_w`` output columns.
    Element ``(k, m)`` of A^T is input (image, channel, row, column) for ``k``
    = (channel, tap) as an OIHW weight flattens and ``m`` = (image, output
    row, output column), or zero in the padding: the matrix that
    :func:`.subgroup_matrix.im2col_t` writes, never stored."""

    images: int
    channels: int
    height: int
    width: int
    kh: int
    kw: int
    sy: int = 1
    sx: int = 1
    top: int = 0
    left: int = 0
    out_w: int = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.images, self.channels, self.height, self.width)

    @property
    def pointwise(self) -> bool:
        """Whether A^T is the input itself, per image (a 1x1 kernel at stride 1,
        unpadded): ``[channels, pixels]``."""
        return (self.kh, self.kw, self.sy, self.sx, self.top, self.left) == (1, 1, 1, 1, 0, 0)


@dataclass(frozen=True)
class Gemm:
    """``C[m, n] = sum_k A[m, k] B[k, n]`` in blocks of ``(16 tm) x (16 tn)``.

    ``conv``: the convolution form: A stored transposed (``[k, m]``, as
    :func:`.subgroup_matrix.im2col_t` writes it), B transposed (``[n, k]``:
    the OIHW weight as it is), and the result in NCHW (``m`` is image, row,
    column).
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
    ``sy x sx``: subgroups a workgroup, sharing A and B through workgroup
    memory (:mod:`.subgroup_tiles`) when more than one; each computes ``tm x tn``
    matrices; ``bk`` columns of K a stage, workgroup rows ``pad`` halves longer.
    ``window``: a convolution whose tiles gather A^T from its input (:class:`Window`)
    instead of reading a stored im2col matrix.
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
    sy: int = 1
    sx: int = 1
    bk: int = SIDE
    pad: int = 0
    window: Window | None = None

    @property
    def tiled(self) -> bool:
        """Whether several subgroups share workgroup tiles (:mod:`.subgroup_tiles`)."""
        return self.sy * self.sx > 1

    @property
    def threads(self) -> int:
        return SUBGROUP * self.sy * self.sx

    @property
    def direct(self) -> bool:
        """Whether the matrices are stored straight to the result (each 16x16
        matrix lies in one image); else through workgroup memory."""
        return not self.conv or (self.pixels > 0 and self.pixels % SIDE == 0)

    @property
    def rows(self) -> int:
        return SIDE * self.tm * self.sy

    @property
    def cols(self) -> int:
        return SIDE * self.tn * self.sx

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
    pixels: int = 0,
    tiles: TilePolicy = NO_TILES,
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
    ``split_k_workgroups`` is split along k (:func:`split_k`). ``pixels``: a
    convolution's output pixels per image. Products that ``tiles`` selects
    share workgroup tiles instead (:func:`tiled_blocks`)."""
    if k % SIDE or n % SIDE or m < SIDE or (conv and m % SIDE):
        return None
    tm = 2 if m % (2 * SIDE) == 0 or (m % SIDE and m >= 2 * SIDE) else 1
    tn = next(t for t in (4, 3, 2, 1) if n % (t * SIDE) == 0)
    g = Gemm(m, n, k, tm, tn, conv, batch=batch, pixels=pixels)
    tiled = tiled_blocks(g, tiles, split_k_workgroups)
    if tiled is not None:
        return tiled
    large = replace(g, tm=4)
    if tm == 2 and tn == 4 and m % (4 * SIDE) == 0 and large.workgroups >= large_blocks_from:
        g = large
    elif g.workgroups < SMALL_BLOCKS_BELOW and tn == 4:
        g = replace(g, tn=2)
    return replace(g, parts=split_k(g, split_k_workgroups))


def tiled_blocks(g: Gemm, tiles: TilePolicy, split_k_workgroups: int) -> Gemm | None:
    """``g`` in workgroup tiles as ``tiles`` selects (:class:`.subgroup_tiles.TilePolicy`),
    split along k as :func:`split_k` says; None where it does not select it or
    they do not fit (columns not in 64s, results not stored straight, rows
    too few or, for a convolution, not in whole blocks)."""
    if not tiles.enabled or not g.direct or g.k < tiles.min_k:
        return None
    # (sy, sx, tn, bk): sy x sx subgroups of 32 x 16 tn.
    shapes: list[tuple[int, int, int, int]] = []
    if g.n % 64 == 0 and g.n <= tiles.tall_up_to:  # 128 x 64
        shapes.append((4, 1, 4, tiles.k))
    if g.n % 128 == 0:  # 128 x 128, else 64 x 128
        shapes += [(4, 2, 4, tiles.k), (2, 2, 4, tiles.k)]
    elif g.n % 64 == 0 and tiles.narrow_k:  # 64 x 64 (2 x 2 subgroups of 32 x 32)
        shapes.append((2, 2, 2, tiles.narrow_k))
    for sy, sx, tn, bk in shapes:
        t = replace(g, tm=2, tn=tn, sy=sy, sx=sx, bk=bk, pad=tiles.pad)
        if g.m < t.rows or (g.conv and g.m % t.rows):
            continue
        if sy == 4 and t.workgroups < tiles.large_from:
            continue
        t = replace(t, parts=split_k(t, split_k_workgroups))
        if tiles_fit(t) and t.k // t.parts >= tiles.min_k:
            return t
    return None


def split_k(g: Gemm, workgroups: int) -> int:
    """Into how many ranges of k ``g`` is split so that it has at least
    ``workgroups`` blocks (1: not split). One block is one subgroup, so a deep
    product with few blocks (the UNet's 8x8 and 16x16 levels: 80 to 320)
    leaves most of the GPU idle, each subgroup waiting on its loads; the
    ranges are equal, whole 16-column steps, at least ``SPLIT_K_MIN_STEPS``
    of them, and at most 16 (:func:`.conv2d.split_depth`). Blocks of workgroup
    tiles count their subgroups, and their ranges are whole stages."""
    blocks = g.workgroups // g.parts * g.sy * g.sx
    return split_depth(blocks, g.k, workgroups, step=g.bk, min_chunk=SIDE * SPLIT_K_MIN_STEPS)


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
    if g.tiled:
        # The statements of the tiles open a block (its uniformity diagnostic off).
        stores = _stores_direct(g, pairs, "wsd_mr", "wsd_nc")
        return "\n  ".join([*_blocks_wgsl(g), *tiles_wgsl(g), *stores, "}", "//"])
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


def _stores_direct(
    g: Gemm, pairs: list[tuple[int, int]], m0: str = "wsd_m0", n0: str = "wsd_n0"
) -> list[str]:
    """The accumulators stored straight to the f32 result: row-major into a
    ``[m, n]`` matmul result; column-major into an NCHW one, where a matrix's
    16 rows are 16 adjacent pixels of one image and its columns channels.
    ``m0``, ``n0``: the first row and column of the subgroup's matrices."""
    size = g.m * g.n * g.batch
    base = "".join(
        [
            f"wsd_part * {size}u + " if g.parts > 1 else "",
            f"wsd_b * {g.m * g.n}u + " if g.batch > 1 else "",
        ]
    )
    if not g.conv:
        return [
            f"subgroupMatrixStore(&{_C}, {base}({m0} + {SIDE * i}u) * {g.n}u + {n0} + "
            f"{SIDE * j}u, wsd_acc_{i}_{j}, false, {g.n}u);"
            for i, j in pairs
        ]
    p = g.pixels
    lines = [f"let wsd_r{i} = {m0} + {SIDE * i}u;" for i in range(g.tm)]
    return lines + [
        f"subgroupMatrixStore(&{_C}, {base}(wsd_r{i} / {p}u * {g.n}u + {n0} + {SIDE * j}u) "
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

    direct, zero, tiled, threads = g.direct, (0,) * len(result), g.tiled, g.threads
    a_halves, b_halves = workgroup_halves(g) if tiled else (1, 1)

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(a: T.handle, b: T.handle, c: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        # The WGSL text names A, B and C (TVM prints them as A_ptr, B_ptr, C_ptr).
        A = T.match_buffer(a, a_shape, "float16")  # noqa: N806
        B = T.match_buffer(b, b_shape, "float16")  # noqa: N806
        C = T.match_buffer(c, result, "float32")  # noqa: N806
        for bx in T.thread_binding(g.n // cols, thread="blockIdx.x"):
            for by in T.thread_binding(row_blocks * g.parts * g.batch, thread="blockIdx.y"):
                for tx in T.thread_binding(threads, thread="threadIdx.x"):
                    if tiled:
                        # A's and B's stages in workgroup memory, for the WGSL (which
                        # also stores the result: the same store that never runs).
                        wsd_ta = T.alloc_buffer((a_halves,), "float16", scope="shared")
                        wsd_tb = T.alloc_buffer((b_halves,), "float16", scope="shared")
                        T.evaluate(
                            T.call_extern(
                                "int32", text, A.data, B.data, wsd_ta.data, wsd_tb.data, C.data
                            )
                        )
                        if T.call_extern("bool", "all", T.bool(False)):
                            C[zero] = T.float32(0)
                    elif direct:
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
    im2col of :func:`.subgroup_matrix.im2col_t`), or the input it is gathered
    from (``g.window``), the OIHW weight ``w_shape`` read as B^T ``[n, k]``,
    the f32 NCHW result of ``out_shape``."""
    a_shape = (g.k, g.m) if g.window is None else g.window.shape
    return _gemm_kernel(g, a_shape, w_shape, out_shape)
