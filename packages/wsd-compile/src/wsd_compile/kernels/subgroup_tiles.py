"""Workgroup tiles for the tensor-core GEMM: several subgroups share A and B.

The one-subgroup kernel of :mod:`.subgroup_gemm` loads every 16x16 matrix
from storage itself. Here a workgroup of ``sy x sx`` subgroups owns a block
of ``(16 tm sy) x (16 tn sx)`` results, each subgroup a ``(16 tm) x (16 tn)``
part of it, and the block's A and B are staged through workgroup memory
``bk`` columns of K at a time, software-pipelined:

- every invocation loads its share of the *next* stage's tiles from storage
  into registers before the products of this stage (four halves gathered
  from four loads, as TVM declares storage as arrays of scalars; the page
  makes each gather one ``vec4<f16>`` load: ``js/wgsl_rewrite.js``),
  and stores them to the other of two workgroup buffers after them: one
  barrier a stage, the loads' latency behind the tensor-core products;
- the subgroups load their matrices from workgroup memory, whose rows are
  ``pad`` halves longer than the tile's (against bank conflicts);
- the results are stored straight to the f32 result, as the one-subgroup
  kernel's are (``subgroupMatrixStore``), so only products whose matrices
  each lie in one image take these tiles (``Gemm.direct``).

Measured on the H200 in ``node/probe_subgroup_matrix.mjs --variants``
(``docs/kernels.md``): 1.2-1.8x the one-subgroup kernel on products with
columns in 128s. Blocks of 128 x 64, four subgroups stacked sharing B's
tile (``TilePolicy.tall_up_to``), measured on an H100: 1.2-1.8x the
one-subgroup kernel on SD 1.5's 320 columns, 1.04-1.12x the 128 x 128 tiles
on the VAE decoder's 256 and 128; in a build on the H200, SD 1.5 512's UNet
step 52.2 -> 50.2 ms of GPU time and its VAE decode 42.6 -> 39.7 ms
(``docs/benchmarks/sd15-512-tall.json``).

With ``TilePolicy.gather`` (opt-in), a convolution's A^T tiles are gathered
from its NCHW input as they are staged (:func:`gather_wgsl`), and no im2col
matrix is written; measured on an H100 it was slower than reading the matrix
(``docs/kernels.md``).

Which subgroup an invocation belongs to is not uniform over the workgroup,
so Tint's subgroup-matrix uniformity analysis is switched off for the
kernel's statements (a ``@diagnostic`` on their block): every 32 consecutive
invocations are one subgroup (``subgroup-size-max-32``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .subgroup_gemm import Gemm

#: A subgroup matrix is 16 x 16; a subgroup is 32 invocations.
SIDE, SUBGROUP = 16, 32
#: Halves a vector load carries.
VECTOR = 4
#: The most workgroup memory a kernel uses: what Apple's and D3D12's adapters
#: allow (WebGPU's default is 16 KiB; the page asks for the adapter's limit).
MAX_WORKGROUP_BYTES = 32768


@dataclass(frozen=True)
class TilePolicy:
    """Which products take workgroup tiles, and their stage (``KernelOptions.subgroup_tiles``).

    Products of at most ``tall_up_to`` columns (0: none), in 64s, take
    blocks of 128 x 64 (4 x 1 subgroups of 32 x 64: B's tile shared four
    ways) where they make at least ``large_from`` of those. The others whose
    columns are in 128s take blocks of 128 x 128 (4 x 2 subgroups of 32 x 64)
    where they make at least ``large_from`` of those, else 64 x 128 (2 x 2
    subgroups); the rest keep the one-subgroup kernel. ``k``: columns of K a
    stage (a multiple of 16); ``pad``: halves each workgroup row is padded
    by. ``narrow_k``: products whose columns are in 64s but not 128s that do
    not take 128 x 64 blocks take 64 x 64 blocks (2 x 2 subgroups of 32 x 32)
    with this many columns of K a stage (0: they keep the one-subgroup
    kernel). ``min_k``: products summing fewer columns of K
    (a block's range, when split) keep the one-subgroup kernel: with a few
    stages there is nothing to hide the loads behind (attention's ``Q K^T``
    over heads of 40: 5.9 against 3.5 ms a step on the H200). A block whose
    two buffers would exceed :data:`MAX_WORKGROUP_BYTES` is not used."""

    enabled: bool = True
    large_from: int = 64
    k: int = 16
    pad: int = 8
    narrow_k: int = 0
    min_k: int = 128
    tall_up_to: int = 320
    #: Convolutions in these tiles gather A^T from their input as they stage it
    #: (implicit GEMM: :func:`gather_wgsl`), where its output columns are in
    #: whole vectors. False, the default: they read an im2col matrix a kernel
    #: of its own wrote, which is faster today (``docs/kernels.md``: the gather's
    #: loads cost the product more than the im2col kernel costs, and the
    #: activation the im2col kernel computed becomes a kernel of its own).
    gather: bool = False


#: The policy builds use (128 x 64 blocks for products of at most 320 columns:
#: SD 1.5's 64x64 level, the VAE decoder's 128 and 256 channels), and workgroup
#: tiles off (every product in the one-subgroup kernel).
TILES = TilePolicy()
NO_TILES = TilePolicy(enabled=False)


def staged_tiles(g: Gemm) -> tuple[tuple[int, int, int, str], tuple[int, int, int, str]]:
    """A's and B's tiles as staged: ``(rows, columns, storage stride, start)``,
    columns contiguous in storage and in workgroup memory; ``start`` is the WGSL
    offset in storage of the tile at column ``wsd_k`` of K (a batch's offset
    included)."""
    a_batch = f"wsd_b * {g.m * g.k}u + " if g.batch > 1 else ""
    b_batch = f"wsd_b * {g.k * g.n}u + " if g.batch > 1 else ""
    if g.conv:  # A^T [k, m], B^T [n, k]
        return (
            (g.bk, g.rows, g.m, f"{a_batch}wsd_k * {g.m}u + wsd_m0"),
            (g.cols, g.bk, g.k, f"{b_batch}wsd_n0 * {g.k}u + wsd_k"),
        )
    return (
        (g.rows, g.bk, g.k, f"{a_batch}wsd_m0 * {g.k}u + wsd_k"),
        (g.bk, g.cols, g.n, f"{b_batch}wsd_k * {g.n}u + wsd_n0"),
    )


def workgroup_halves(g: Gemm) -> tuple[int, int]:
    """The halves of A's and B's two workgroup buffers (``wsd_ta``, ``wsd_tb``)."""
    a, b = staged_tiles(g)
    return 2 * a[0] * (a[1] + g.pad), 2 * b[0] * (b[1] + g.pad)


def tiles_fit(g: Gemm) -> bool:
    """Whether ``g``'s tiles divide among its invocations in whole vector loads,
    its range of k in whole stages, and its buffers fit :data:`MAX_WORKGROUP_BYTES`."""
    loads = VECTOR * g.threads
    return (
        all(rows * cols % loads == 0 and cols % VECTOR == 0 for rows, cols, _, _ in staged_tiles(g))
        and (g.k // g.parts) % g.bk == 0
        and 2 * sum(workgroup_halves(g)) <= MAX_WORKGROUP_BYTES
    )


def _share(g: Gemm, name: str, tile: tuple[int, int, int, str]) -> list[tuple[str, str, str]]:
    """For each of an invocation's vector loads of one tile: (register, storage
    offset, workgroup offset within a buffer) as WGSL."""
    rows, cols, stride, start = tile
    out = []
    per_row = cols // VECTOR
    for p in range(rows * cols // (VECTOR * g.threads)):
        e = f"(wsd_li + {p * g.threads}u)"
        row, col = f"{e} / {per_row}u", f"{e} % {per_row}u * {VECTOR}u"
        src = f"({start}) + ({row}) * {stride}u + {col}"
        out.append((f"wsd_g{name}{p}", src, f"({row}) * {cols + g.pad}u + {col}"))
    return out


def tiles_wgsl(g: Gemm) -> list[str]:
    """The kernel's statements after the block's placement (which sets
    ``wsd_m0``, ``wsd_n0`` and, split or batched, ``wsd_k0`` and ``wsd_b``), up
    to the accumulators ``wsd_acc_i_j`` of the subgroup's matrices, the
    subgroup's first row ``wsd_mr`` and column ``wsd_nc``."""
    a, b = staged_tiles(g)
    sizes = workgroup_halves(g)
    operands = [
        ("a", "A_ptr", "wsd_ta", sizes[0] // 2, a),
        ("b", "B_ptr", "wsd_tb", sizes[1] // 2, b),
    ]
    fetch: list[str] = []
    stash: list[str] = []
    regs: list[str] = []
    setup, gathers = gather_wgsl(g) if g.window is not None else ([], [])
    for name, storage, shared, size, tile in operands:
        for p, (reg, src, dst) in enumerate(_share(g, name, tile)):
            regs.append(f"var {reg} : vec4<f16>;")
            if name == "a" and gathers:
                fetch.append(gathers[p])
            else:
                halves = ", ".join(f"{storage}[{src} + {q}u]" for q in range(VECTOR))
                fetch.append(f"{reg} = vec4<f16>({halves});")
            stash.extend(
                f"{shared}[wsd_buf * {size}u + {dst} + {q}u] = {reg}[{q}];" for q in range(VECTOR)
            )
    k0 = "wsd_k0" if g.parts > 1 else "0u"
    stages = g.k // g.parts // g.bk
    pairs = [(i, j) for i in range(g.tm) for j in range(g.tn)]
    return [
        "@diagnostic(off, chromium.subgroup_matrix_uniformity) {",
        "let wsd_li = threadIdx.x;",
        f"let wsd_mr = wsd_m0 + wsd_li / {SUBGROUP * g.sx}u * {SIDE * g.tm}u;",
        f"let wsd_nc = wsd_n0 + wsd_li / {SUBGROUP}u % {g.sx}u * {SIDE * g.tn}u;",
        *(f"var wsd_acc_{i}_{j} = subgroup_matrix_result<f32, 16, 16>();" for i, j in pairs),
        *regs,
        *setup,
        f"var wsd_k = {k0};",
        "var wsd_buf = 0u;",
        *fetch,
        *stash,
        "workgroupBarrier();",
        f"for (var wsd_s = 0u; wsd_s < {stages}u; wsd_s++) {{",
        "let wsd_cur = wsd_s % 2u;",
        f"wsd_k = {k0} + (wsd_s + 1u) * {g.bk}u;",
        "wsd_buf = 1u - wsd_cur;",
        f"let wsd_more = wsd_s + 1u < {stages}u;",
        "if (wsd_more) {",
        *fetch,
        "}",
        *_products(g, sizes, pairs),
        "if (wsd_more) {",
        *stash,
        "}",
        "workgroupBarrier();",
        "}",
    ]


def gather_wgsl(g: Gemm) -> tuple[list[str], list[str]]:
    """A convolution's A^T tiles gathered from its input (``g.window``): the
    statements that place each of an invocation's vector loads (once, before
    the stages), and for each the statement that fills its register
    ``wsd_ga{p}`` for the next stage.

    A register holds 4 adjacent output pixels of one row (output columns in
    4s) at one (channel, tap) of K. The pixels' row, column and image are
    split from ``m`` once, and ``k`` into the channel's offset ``wsd_ca{p}``
    and the tap ``wsd_ta{p}`` once: each stage moves them on by ``bk``
    columns of K without a division. A row in the padding gives zeros (its
    loads' row clamped into the input); of the 4 columns, only those that can
    fall in the padding (by the window's geometry) are tested and clamped. A
    1x1 kernel at stride 1 reads 4 adjacent halves of the input, a gather the
    page makes one vector load."""
    w = g.window
    if w is None:
        raise ValueError(f"gather_wgsl: {g} is not a convolution gathering from its input")
    rows, cols, _, _ = staged_tiles(g)[0]
    per_row, plane, taps = cols // VECTOR, w.height * w.width, w.kh * w.kw
    k0 = "wsd_k0" if g.parts > 1 else "0u"
    # The input columns the first of a register's 4 pixels reads, over the image.
    low, high = -w.left, (w.out_w - VECTOR) * w.sx + w.kw - 1 - w.left
    setup: list[str] = []
    fetch: list[str] = []
    for p in range(rows * cols // (VECTOR * g.threads)):
        e = f"(wsd_li + {p * g.threads}u)"
        image = f"wsd_ma{p} / {g.pixels}u * {w.channels * plane}u"
        setup += [
            f"let wsd_ka{p} = {e} / {per_row}u;",
            f"let wsd_ma{p} = wsd_m0 + {e} % {per_row}u * {VECTOR}u;",
        ]
        if w.pointwise:
            setup.append(f"let wsd_pa{p} = {image} + wsd_ma{p} % {g.pixels}u;")
            k = f"(wsd_k + wsd_ka{p})"
            loads = ", ".join(f"A_ptr[wsd_pa{p} + {k} * {plane}u + {q}u]" for q in range(VECTOR))
            fetch.append(f"wsd_ga{p} = vec4<f16>({loads});")
            continue
        setup += [
            f"let wsd_ya{p} = i32(wsd_ma{p} % {g.pixels}u / {w.out_w}u * {w.sy}u) - {w.top};",
            f"let wsd_xa{p} = i32(wsd_ma{p} % {w.out_w}u * {w.sx}u) - {w.left};",
            f"var wsd_ca{p} = i32({image} + ({k0} + wsd_ka{p}) / {taps}u * {plane}u);",
            f"var wsd_ta{p} = ({k0} + wsd_ka{p}) % {taps}u;",
        ]
        lanes = []
        for q in range(VECTOR):
            x = q * w.sx
            tests = ([f"wsd_ix >= {-x}"] if low + x < 0 else []) + (
                [f"wsd_ix < {w.width - x}"] if high + x >= w.width else []
            )
            if not tests:
                lanes.append(f"A_ptr[wsd_row + wsd_ix + {x}]")
                continue
            at = f"wsd_row + clamp(wsd_ix + {x}, 0, {w.width - 1})"
            lanes.append(f"select(0.0h, A_ptr[{at}], {' && '.join(tests)})")
        step, carry = g.bk % taps, g.bk // taps * plane
        statements = [
            f"let wsd_iy = wsd_ya{p} + i32(wsd_ta{p} / {w.kw}u);",
            f"let wsd_ix = wsd_xa{p} + i32(wsd_ta{p} % {w.kw}u);",
            f"let wsd_row = wsd_ca{p} + clamp(wsd_iy, 0, {w.height - 1}) * {w.width};",
            f"wsd_ga{p} = select(vec4<f16>(), vec4<f16>({', '.join(lanes)}), "
            f"wsd_iy >= 0 && wsd_iy < {w.height});",
            # The next stage's channel and tap.
            f"wsd_ta{p} += {step}u;",
            f"let wsd_wrap = wsd_ta{p} >= {taps}u;",
            f"wsd_ta{p} = select(wsd_ta{p}, wsd_ta{p} - {taps}u, wsd_wrap);",
            f"wsd_ca{p} += select({carry}, {carry + plane}, wsd_wrap);",
        ]
        fetch.append("{ " + " ".join(statements) + " }")
    return setup, fetch


def _products(g: Gemm, sizes: tuple[int, int], pairs: list[tuple[int, int]]) -> list[str]:
    """One stage's products: each 16-column step's matrices loaded from the
    current workgroup buffers, then multiplied into the accumulators."""
    # Workgroup rows: the staged tiles' columns, padded.
    a, b = staged_tiles(g)
    a_cols, b_cols = a[1] + g.pad, b[1] + g.pad
    a_at, b_at = f"wsd_cur * {sizes[0] // 2}u", f"wsd_cur * {sizes[1] // 2}u"
    # The subgroup's place in the block.
    mr, nc = "(wsd_mr - wsd_m0)", "(wsd_nc - wsd_n0)"
    out = []
    for kk in range(0, g.bk, SIDE):
        for i in range(g.tm):
            if g.conv:
                at = f"{a_at} + {kk * a_cols}u + {mr} + {SIDE * i}u, true"
            else:
                at = f"{a_at} + ({mr} + {SIDE * i}u) * {a_cols}u + {kk}u, false"
            out.append(
                f"let wsd_a{kk}_{i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>"
                f"(&wsd_ta, {at}, {a_cols}u);"
            )
        for j in range(g.tn):
            if g.conv:
                at = f"{b_at} + ({nc} + {SIDE * j}u) * {b_cols}u + {kk}u, true"
            else:
                at = f"{b_at} + {kk * b_cols}u + {nc} + {SIDE * j}u, false"
            out.append(
                f"let wsd_b{kk}_{j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>"
                f"(&wsd_tb, {at}, {b_cols}u);"
            )
        out.extend(
            f"wsd_acc_{i}_{j} = subgroupMatrixMultiplyAccumulate(wsd_a{kk}_{i}, wsd_b{kk}_{j}, "
            f"wsd_acc_{i}_{j});"
            for i, j in pairs
        )
    return out
