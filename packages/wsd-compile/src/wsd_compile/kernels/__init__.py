"""GPU kernels for WebGPU: the graph rewrites and schedules wsd compiles with.

TVM's generic GPU pipeline (legalize, fuse, dlight default schedules) is kept,
with three changes, each found by profiling the SD 1.5 UNet step per kernel
on an NVIDIA H200 through Dawn (``wsd-web bench``; see docs/benchmarks.md):

* **Group norm** is rewritten before legalization into a two-stage
  reduction for its statistics (partial sums over chunks of each group, then
  the sum of those) and one element-wise normalisation that fuses with the
  SiLU after it. TVM's single group-norm kernel reduced each group in one
  thread and took 45% of the step.
* **Convolutions** are legalized as an implicit GEMM: the output is a
  reduction over ``k = (input channel, kernel row, kernel column)`` of the
  weight matrix times an im2col view of the padded input that is never
  stored, so the matmul schedule tiles it through workgroup memory like any
  matmul (the gather and the padding are inlined into the tile loads).
* **Matmuls** (and with them the convolutions) use a larger register and
  workgroup tile than dlight's generic default for targets it has no table
  for (WebGPU gets 32x32 tiles of 64 threads, k-step 8).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tvm
from tvm import relax, s_tir, te, tirx
from tvm.relax.expr_functor import PyExprMutator, mutator
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.gpu.matmul import (
    auto_inline_consumer_chain,
    auto_inline_producers,
    get_index_map,
    get_reduction_blocks,
)

_REDUCE = 2  # IterVar.CommReduce

#: Matmuls with at least this many outputs get twice the register tile per
#: thread (1024 workgroups of 128x128).
LARGE_MATMUL_OUTPUTS = 1024 * 128 * 128

#: The longest chunk one thread group sums in the group-norm statistics.
GROUP_NORM_CHUNK = 1024


@dataclass(frozen=True)
class MatmulTiles:
    """A matmul schedule: workgroup ``block_y x block_x`` threads, each
    computing ``micro_y x micro_x`` outputs, stepping ``k`` by ``micro_k``,
    loading ``vector`` elements at a time."""

    block_x: int = 16
    block_y: int = 16
    micro_x: int = 4
    micro_y: int = 4
    micro_k: int = 16
    vector: int = 4
    unroll: int = 256


DEFAULT_TILES = MatmulTiles()

#: A matmul's shape after dlight's normalisation to ``C[s, i, j] += A[s, i, k] * B[s, j, k]``:
#: ``(s, i, j, k)`` extents (before padding to the tiles).
MatmulShape = tuple[int, int, int, int]

#: Tiles chosen per shape by measurement (``scripts/tune_tiles.py``), package data.
TUNED_TILES_FILE = "tuned_tiles.json"


def load_tile_table(path: str | os.PathLike[str] | None = None) -> dict[MatmulShape, MatmulTiles]:
    """The per-shape tile table (``tuned_tiles.json`` beside this module by default).

    Each entry is ``{"shape": [s, i, j, k], "tiles": {MatmulTiles fields}}``;
    the file also records how the choice was measured."""
    source = Path(path) if path is not None else Path(__file__).with_name(TUNED_TILES_FILE)
    data = json.loads(source.read_text())
    table: dict[MatmulShape, MatmulTiles] = {}
    for entry in data["entries"]:
        s_, i, j, k = (int(v) for v in entry["shape"])
        table[(s_, i, j, k)] = MatmulTiles(**entry["tiles"])
    return table


def matmul_shape(func: Any) -> MatmulShape | None:
    """``func``'s normalised matmul shape, or None if it is not a matmul
    (the shape :class:`WebGPUMatmul` looks its tiles up by)."""
    if not isinstance(func, tirx.PrimFunc):
        return None
    try:
        sch = s_tir.Schedule(func)
        reductions = get_reduction_blocks(sch, sch.get_child_blocks(get_root_block(sch)))
        if reductions is None:
            return None
        main = reductions[0]
        index_maps = get_index_map(sch.get(main))
        if index_maps is None:
            return None
        for index, rw in ((0, "read"), (1, "read"), (0, "write")):
            sch.reindex(main, (rw, index))
        sch.transform_block_layout(main, index_maps[0])
        extents = [int(sch.get(loop).extent) for loop in sch.get_loops(main)]
    except Exception:
        return None
    if len(extents) != 4:
        return None
    return (extents[0], extents[1], extents[2], extents[3])


class TiledMatmul(dl.gpu.Matmul):  # type: ignore[misc]
    """dlight's matmul rule with our tile sizes for WebGPU."""

    def __init__(self, tiles: MatmulTiles = DEFAULT_TILES) -> None:
        super().__init__()
        self.tiles = tiles
        self._scalar = False

    def apply(self, func: Any, target: tvm.target.Target, tunable: bool) -> Any:
        # Vector loads lower only where no dimension is padded to the tile
        # (TVM's storage rewrite rejects them otherwise) and not through the
        # implicit-GEMM gather (a conditional load per element).
        t = self.tiles
        tile = max(t.block_x * t.micro_x, t.block_y * t.micro_y, t.micro_k)
        self._scalar = not isinstance(func, tirx.PrimFunc) or (
            _has_block(func, "im2col")
            or any(dim % tile != 0 for dim in _param_dims(func))
            or not _reduces_innermost(func)
        )
        return super().apply(func, target, tunable)

    def get_configs(self, target: tvm.target.Target) -> Any:
        if target.kind.name != "webgpu":
            return super().get_configs(target)
        t = replace(self.tiles, vector=1) if self._scalar else self.tiles
        return dl.gpu.Matmul.Config(
            block_size_x=t.block_x,
            block_size_y=t.block_y,
            vthread_x=1,
            vthread_y=1,
            micro_size_x=t.micro_x,
            micro_size_y=t.micro_y,
            micro_size_k=t.micro_k,
            vector_size=t.vector,
            unroll=t.unroll,
            use_shared=True,
            storage_align=False,
            inner_x=False,
        )


class WebGPUMatmul(dl.gpu.Matmul):  # type: ignore[misc]
    """A matmul schedule written for WebGPU's workgroup memory and registers.

    After dlight's normalisation to ``C[s, i, j] += A[s, i, k] * B[s, j, k]``
    (which also covers the implicit-GEMM convolutions), each workgroup of
    ``block_y x block_x`` threads computes a tile of
    ``(block_y * micro_y) x (block_x * micro_x)`` outputs in registers, stepping
    ``k`` by ``micro_k`` through two workgroup-memory tiles:

    * each thread owns outputs strided by the thread count (row
      ``r * block_y + threadIdx.y``), so that neighbouring threads read
      neighbouring words of workgroup memory, whose rows are padded by one
      word: no bank conflicts;
    * the tiles are loaded cooperatively with the loop order that makes
      consecutive threads read consecutive global addresses of each operand
      (``k`` fastest where the operand is stored ``k``-contiguous, as weights
      are; ``i``/``j`` fastest otherwise, as the pixels of a convolution's
      input); the implicit-GEMM gather and any producer are inlined into
      these loads;
    * the inner ``k`` step and the register tile are unrolled, so the
      accumulators are registers, and the epilogue (bias, residual, scaling)
      is fused into the store.
    """

    def __init__(
        self,
        tiles: MatmulTiles = DEFAULT_TILES,
        *,
        table: Mapping[MatmulShape, MatmulTiles] | None = None,
        adaptive: bool = True,
    ) -> None:
        super().__init__()
        self.tiles = tiles
        self.table = dict(table or {})
        self.adaptive = adaptive

    def apply(self, func: Any, target: tvm.target.Target, tunable: bool) -> Any:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        if target.kind.name != "webgpu":
            return super().apply(func, target, tunable)
        try:
            return self._schedule(func)
        except Exception:
            return None

    def _schedule(self, func: tirx.PrimFunc) -> s_tir.Schedule | None:
        t = self.tiles
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(get_root_block(sch))
        reductions = get_reduction_blocks(sch, blocks)
        if reductions is None:
            return None
        main = reductions[0]
        if get_index_map(sch.get(main)) is None:
            return None
        k_contiguous = _operands_k_contiguous(sch.get(main))
        reindex_a = sch.reindex(main, ("read", 0))
        reindex_b = sch.reindex(main, ("read", 1))
        reindex_c = sch.reindex(main, ("write", 0))
        matmul_map, a_map, b_map, c_map = get_index_map(sch.get(main))
        sch.transform_layout(reindex_a, ("write", 0), a_map)
        sch.transform_layout(reindex_b, ("write", 0), b_map)
        sch.transform_layout(reindex_c, ("read", 0), c_map)
        sch.transform_block_layout(main, matmul_map)

        extents = [int(sch.get(loop).extent) for loop in sch.get_loops(main)]
        shape = (extents[0], extents[1], extents[2], extents[3]) if len(extents) == 4 else None
        if shape is not None and shape in self.table:
            t = self.table[shape]
        elif self.adaptive and extents[0] * extents[1] * extents[2] >= LARGE_MATMUL_OUTPUTS:
            # Measured on the H200: 8x8 registers per thread win only where
            # there are enough 128x128 tiles to fill the GPU (the VAE's
            # full-resolution convolutions); elsewhere 4x4 does.
            t = replace(t, micro_x=2 * t.micro_x, micro_y=2 * t.micro_y)
        tile_i, tile_j = t.block_y * t.micro_y, t.block_x * t.micro_x
        sch.pad_einsum(main, [1, tile_i, tile_j, t.micro_k])
        batch, i, j, k = sch.get_loops(main)
        bi, ri, ti = sch.split(i, [None, t.micro_y, t.block_y])
        bj, rj, tj = sch.split(j, [None, t.micro_x, t.block_x])
        ko, ki = sch.split(k, [None, t.micro_k])
        sch.reorder(batch, bi, bj, ri, rj, ti, tj, ko, ki)
        sch.bind(sch.fuse(batch, bi), "blockIdx.y")
        sch.bind(bj, "blockIdx.x")
        # Virtual threads: TVM gives each its own registers (strided outputs
        # would otherwise make one sparse local array per thread).
        sch.bind(ri, "vthread.y")
        sch.bind(rj, "vthread.x")
        sch.bind(ti, "threadIdx.y")
        sch.bind(tj, "threadIdx.x")

        store = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(store, tj, preserve_unit_loops=True)

        def fetch(index: int, k_fast: bool) -> Any:
            tile = sch.cache_read(main, index, "shared")
            sch.compute_at(tile, ko, preserve_unit_loops=True)
            rows, depth = sch.get_loops(tile)[-2:]
            if not k_fast:
                sch.reorder(depth, rows)
                rows, depth = depth, rows
            fused = sch.fuse(rows, depth)
            _, ty, tx = sch.split(fused, [None, t.block_y, t.block_x])
            sch.bind(ty, "threadIdx.y")
            sch.bind(tx, "threadIdx.x")
            sch.storage_align(tile, 0, axis=1, factor=16, offset=1)
            return tile

        tile_a = fetch(0, k_contiguous[0])
        tile_b = fetch(1, k_contiguous[1])
        for cached in (0, 1):
            local = sch.cache_read(main, cached, "local")
            sch.compute_at(local, ki, preserve_unit_loops=True)
        auto_inline_producers(sch, tile_a)
        auto_inline_producers(sch, tile_b)
        auto_inline_consumer_chain(sch, store)
        sch.unroll(ki)
        sch.decompose_reduction(main, ko)
        return sch


def _operands_k_contiguous(block: Any) -> tuple[bool, bool]:
    """For each of a matmul block's two inputs, whether its innermost index
    is a reduction variable (consecutive ``k`` are consecutive addresses)."""
    reduce_vars = [iv.var for iv in block.iter_vars if int(iv.iter_type) == _REDUCE]

    def inner(read: Any) -> bool:
        last = read.region[-1].min
        return any(last.same_as(var) for var in reduce_vars)

    reads = list(block.reads)
    return inner(reads[0]), inner(reads[-1])


def _param_dims(func: tirx.PrimFunc) -> list[int]:
    """The last two dimensions of each tensor parameter of ``func`` (static ones)."""
    dims = []
    for param in func.params:
        for dim in list(getattr(param, "shape", None) or [])[-2:]:
            if isinstance(dim, int | tirx.IntImm):
                dims.append(int(dim))
    return dims


def _reduces_innermost(func: tirx.PrimFunc) -> bool:
    """Whether every input of ``func``'s reduction is read along its last axis
    (so a workgroup's tile loads are contiguous and can be vectors)."""
    sch = s_tir.Schedule(func)
    blocks = sch.get_child_blocks(get_root_block(sch))
    reductions = get_reduction_blocks(sch, blocks)
    if not reductions:
        return False
    return all(_operands_k_contiguous(sch.get(reductions[0])))


def _has_block(func: tirx.PrimFunc, name: str) -> bool:
    try:
        s_tir.Schedule(func).get_sblock(name)
    except Exception:
        return False
    return True


def _chunks(size: int) -> int:
    """How many chunks to split a group of ``size`` elements into: the fewest
    that divide it evenly with at most :data:`GROUP_NORM_CHUNK` elements each."""
    for parts in range(1, size + 1):
        if size % parts == 0 and size // parts <= GROUP_NORM_CHUNK:
            return parts
    return size


def _static_shape(expr: relax.Expr) -> list[int] | None:
    sinfo = expr.ty
    if not isinstance(sinfo, relax.TensorType) or sinfo.shape is None:
        return None
    dims = []
    for dim in sinfo.shape.values:
        if not isinstance(dim, tirx.IntImm):
            return None
        dims.append(int(dim.value))
    return dims


@mutator
class _GroupNormRewriter(PyExprMutator):  # type: ignore[misc]
    """Replace ``relax.nn.group_norm`` (NC..., groups on axis 1) with explicit
    two-stage statistics and an element-wise normalisation."""

    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.op = tvm.ir.Op.get("relax.nn.group_norm")

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op != self.op:
            return call
        attrs = call.attrs
        x, gamma, beta = call.args
        shape = _static_shape(x)
        if (
            shape is None
            or int(attrs.channel_axis) != 1
            or [int(a) for a in attrs.axes] != list(range(2, len(shape)))
        ):
            return call
        return self.builder_.normalize(self._decompose(call, x, gamma, beta, shape))

    def _decompose(
        self, call: relax.Call, x: relax.Expr, gamma: relax.Expr, beta: relax.Expr, shape: list[int]
    ) -> relax.Expr:
        op = relax.op
        attrs = call.attrs
        groups = int(attrs.num_groups)
        n, channels = shape[0], shape[1]
        size = channels // groups
        for dim in shape[2:]:
            size *= dim
        parts = _chunks(size)
        dtype = x.ty.dtype
        emit = self.builder_.emit
        xf = emit(op.astype(x, "float32")) if dtype != "float32" else x
        chunked = emit(op.reshape(xf, [n, groups, parts, size // parts]))

        def mean(values: relax.Expr) -> relax.Expr:
            partial = emit(op.sum(values, axis=[3], keepdims=True))
            total = op.sum(partial, axis=[2], keepdims=True)
            return emit(op.divide(total, relax.const(size, "float32")))

        mu = mean(chunked)
        centered = emit(op.subtract(chunked, mu))
        var = mean(emit(op.multiply(centered, centered)))
        inv = emit(op.rsqrt(op.add(var, relax.const(float(attrs.epsilon), "float32"))))
        normed = emit(op.reshape(op.multiply(centered, inv), shape))
        affine = [channels] + [1] * (len(shape) - 2)
        out = normed
        if attrs.center or attrs.scale:
            f32 = dtype != "float32"
            scale = emit(op.reshape(op.astype(gamma, "float32") if f32 else gamma, affine))
            shift = emit(op.reshape(op.astype(beta, "float32") if f32 else beta, affine))
            out = emit(op.add(op.multiply(normed, scale), shift))
        return op.astype(out, dtype) if dtype != "float32" else out


@tvm.transform.module_pass(opt_level=0, name="wsd.DecomposeGroupNorm")  # type: ignore[untyped-decorator]
def decompose_group_norm(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Rewrite every static-shape ``relax.nn.group_norm`` of ``mod``'s Relax functions."""
    rewriter = _GroupNormRewriter(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()


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
    for :func:`_sum_partials` to add up."""
    n, cin, height, width = (int(d) for d in data.shape)
    cout, _, kh, kw = (int(d) for d in weight.shape)
    top, left, bottom, right = padding
    sy, sx = strides
    out_h = (height + top + bottom - kh) // sy + 1
    out_w = (width + left + right - kw) // sx + 1
    taps = kh * kw
    depth = cin * taps

    blocked = channel_block > 1 and cin % channel_block == 0 and taps > 1
    parts = k_parts

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

    if parts > 1:
        chunk = depth // parts
        part_columns = te.compute(
            (parts, n, chunk, out_h, out_w),
            lambda p, b, j, y, x: col(b, p * chunk + j, y, x),
            name="im2col",
        )
        part_matrix = te.compute(
            (parts, cout, chunk), lambda p, o, j: weight_at(o, p * chunk + j), name="weight_matrix"
        )
        j = te.reduce_axis((0, chunk), name="k")
        return te.compute(
            (parts, n, cout, out_h, out_w),
            lambda p, b, o, y, x: te.sum(
                part_matrix[p, o, j].astype(out_dtype)
                * part_columns[p, b, j, y, x].astype(out_dtype),
                axis=j,
            ),
            name="conv2d_gemm",
        )

    columns = te.compute((n, depth, out_h, out_w), col, name="im2col")

    matrix = te.compute((cout, depth), weight_at, name="weight_matrix")
    k = te.reduce_axis((0, depth), name="k")
    return te.compute(
        (n, cout, out_h, out_w),
        lambda b, o, y, x: te.sum(
            matrix[o, k].astype(out_dtype) * columns[b, k, y, x].astype(out_dtype), axis=k
        ),
        name="conv2d_gemm",
    )


def _sum_partials(partials: te.Tensor) -> te.Tensor:
    """The sum over the first axis of split-K partial results."""
    r = te.reduce_axis((0, int(partials.shape[0])), name="part")
    return te.compute(
        tuple(partials.shape[1:]),
        lambda *i: te.sum(partials[(r, *i)], axis=r),
        name="conv2d_split_sum",
    )


#: Split-K ranges of k are at least this long.
SPLIT_K_MIN_DEPTH = 512


def split_k_parts(
    outputs_i: int, outputs_j: int, depth: int, target_tiles: int, step: int = 16
) -> int:
    """How many k ranges a matmul with ``outputs_i x outputs_j`` outputs and
    reduction ``depth`` is split into (1: not split) so that it makes at
    least ``target_tiles`` 64x64 output tiles. The ranges are equal, multiples
    of ``step`` (the k step of the tiles) and at least
    :data:`SPLIT_K_MIN_DEPTH` long; at most 16."""
    tiles = -(-outputs_i // 64) * -(-outputs_j // 64)
    best = 1
    for parts in range(2, 17):
        if tiles * best >= target_tiles:
            break
        chunk, rest = divmod(depth, parts)
        if rest == 0 and chunk % step == 0 and chunk >= SPLIT_K_MIN_DEPTH:
            best = parts
    return best


def _legalize_conv2d(
    bb: relax.BlockBuilder, call: relax.Call, channel_block: int = 0, split_k_tiles: int = 0
) -> relax.Expr | None:
    attrs = call.attrs
    data, weight = call.args
    if (
        attrs.data_layout != "NCHW"
        or attrs.kernel_layout != "OIHW"
        or attrs.out_layout != "NCHW"
        or int(attrs.groups) != 1
        or any(int(d) != 1 for d in attrs.dilation)
        or _static_shape(data) is None
        or _static_shape(weight) is None
    ):
        return None
    out_dtype = str(attrs.out_dtype) if attrs.out_dtype is not None else ""
    if out_dtype in ("", "void", "None"):
        out_dtype = str(data.ty.dtype)
    n, cin, height, width = _static_shape(data) or []
    cout, _, kh, kw = _static_shape(weight) or []
    strides = tuple(int(s) for s in attrs.strides)
    padding = tuple(int(p) for p in attrs.padding)
    out_h = (height + padding[0] + padding[2] - kh) // strides[0] + 1
    out_w = (width + padding[1] + padding[3] - kw) // strides[1] + 1
    parts = split_k_parts(cout, n * out_h * out_w, cin * kh * kw, split_k_tiles)
    gemm = bb.call_te(
        _conv2d_implicit_gemm,
        data,
        weight,
        strides=strides,
        padding=padding,
        out_dtype=out_dtype,
        channel_block=channel_block,
        k_parts=parts,
        primfunc_name_hint="conv2d",
    )
    if parts == 1:
        return gemm
    # A kernel of its own (a reduction does not fuse into the matmul), which
    # the convolution's epilogue (bias, residual) fuses into.
    return bb.call_te(_sum_partials, bb.emit(gemm), primfunc_name_hint="conv2d_split_sum")


def legalize_map(channel_block: int = 0, split_k_tiles: int = 0) -> dict[str, Any]:
    """Legalization overrides: convolutions as implicit GEMM (``k`` in
    blocks of ``channel_block`` channels per tap, see :func:`_conv2d_implicit_gemm`)."""
    default = tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")

    def conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
        gemm = _legalize_conv2d(bb, call, channel_block, split_k_tiles)
        return gemm if gemm is not None else default(bb, call)

    return {"relax.nn.conv2d": conv2d}


@dataclass(frozen=True)
class KernelOptions:
    """Which of the rewrites and schedules above a build uses (all by default;
    each can be turned off to measure what it brings)."""

    group_norm: bool = True
    implicit_gemm: bool = True
    tiles: MatmulTiles | None = DEFAULT_TILES
    #: wsd's own matmul schedule (:class:`WebGPUMatmul`); False: dlight's
    #: rule with ``tiles`` (:class:`TiledMatmul`).
    own_matmul: bool = True
    #: Per-shape tiles measured on a GPU (:func:`load_tile_table`); shapes not
    #: in it get ``tiles``, twice the register tile for large ones if ``adaptive``.
    table: tuple[tuple[MatmulShape, MatmulTiles], ...] = field(
        default_factory=lambda: tuple(load_tile_table().items())
    )
    adaptive: bool = True
    #: Implicit-GEMM ``k`` order: taps of blocks of this many input channels
    #: (0: channel-major, the plain im2col order).
    channel_block: int = 16
    #: Split-K: convolutions with fewer 64x64 output tiles than this are
    #: computed as partial sums over ranges of k, then added up, so that the
    #: GPU gets enough workgroups (:func:`split_k_parts`; 0: never).
    split_k_tiles: int = 1024

    def without(self, **changes: Any) -> KernelOptions:
        return replace(self, **changes)


DEFAULT_KERNELS = KernelOptions()
#: TVM's own lowering and dlight defaults, as before this module.
TVM_DEFAULT_KERNELS = KernelOptions(
    group_norm=False, implicit_gemm=False, tiles=None, own_matmul=False, table=()
)


def webgpu_pipeline(
    target: tvm.target.Target, kernels: KernelOptions = DEFAULT_KERNELS
) -> tvm.transform.Pass:
    """TVM's generic GPU Relax pipeline with wsd's kernels for ``target``."""
    from tvm.relax.backend.gpu_generic import pipeline as generic

    rules: list[Any] = []
    if kernels.tiles is not None:
        if kernels.own_matmul:
            rules.append(
                WebGPUMatmul(kernels.tiles, table=dict(kernels.table), adaptive=kernels.adaptive)
            )
        rules.append(TiledMatmul(kernels.tiles))
    rules.append(dl.gpu.Matmul())
    legalize = relax.transform.LegalizeOps(
        legalize_map(kernels.channel_block, kernels.split_k_tiles)
        if kernels.implicit_gemm
        else None
    )
    passes = [
        *generic.library_dispatch_passes(target),
        *([decompose_group_norm] if kernels.group_norm else []),
        legalize,
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        dl.ApplyDefaultSchedule(
            *rules,
            dl.gpu.GEMV(),
            dl.gpu.Reduction(),
            dl.gpu.GeneralReduction(),
            dl.gpu.Fallback(),
        ),
        *generic.dataflow_lower_passes(target),
        *generic.finalize_passes(target),
    ]

    @tvm.transform.module_pass(opt_level=0, name="wsd.WebGPUPipeline")  # type: ignore[untyped-decorator]
    def pipeline(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        with target:
            result: tvm.IRModule = tvm.transform.Sequential(passes)(mod)
        return result

    return pipeline
