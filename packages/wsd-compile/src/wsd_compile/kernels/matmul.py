"""Matmul schedules for WebGPU, and the per-shape tile table they read.

``WebGPUMatmul`` schedules every matmul and, through the implicit-GEMM
legalization of ``conv2d``, every convolution: after dlight's normalisation
to ``C[s, i, j] += A[s, i, k] * B[s, j, k]``, each workgroup computes a tile
of outputs in registers, stepping ``k`` through workgroup memory. By default
a workgroup of 16x16 threads computes a 64x64 tile (4x4 outputs per thread)
with a k step of 16; large matmuls get 8x8 outputs per thread (128x128
tiles), and the shapes measured on a GPU get the tiles of
``tuned_tiles.json`` (package data beside this module). ``TiledMatmul``,
dlight's own rule given the same tile sizes, takes what it cannot schedule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tvm
from tvm import s_tir, tirx
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


@dataclass(frozen=True)
class MatmulTiles:
    """A matmul schedule: workgroup ``block_y x block_x`` threads, each
    computing ``micro_y x micro_x`` outputs, stepping ``k`` by ``micro_k``,
    loading ``vector`` elements at a time; ``contiguous``: each thread owning
    neighbouring outputs, read as vectors of 4 from k-major workgroup tiles
    (``micro_x`` and ``micro_y`` multiples of 4; the tile table sets it for
    the shapes where it measured faster, ``matmul_contiguous`` everywhere)."""

    block_x: int = 16
    block_y: int = 16
    micro_x: int = 4
    micro_y: int = 4
    micro_k: int = 16
    vector: int = 4
    unroll: int = 256
    contiguous: bool = False


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


class WebGPURule(dl.gpu.Matmul):  # type: ignore[misc]
    """A matmul rule whose schedule (``_schedule``) is written for WebGPU.

    On a WebGPU target a schedule that raises means "not this rule's" (the
    next rule is tried); other targets get ``_other_target`` (none here)."""

    def apply(self, func: Any, target: tvm.target.Target, tunable: bool) -> Any:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        if target.kind.name != "webgpu":
            return self._other_target(func, target, tunable)
        try:
            return self._schedule(func)
        except Exception:
            return None

    def _other_target(self, func: tirx.PrimFunc, target: tvm.target.Target, tunable: bool) -> Any:
        return None

    def _schedule(self, func: tirx.PrimFunc) -> s_tir.Schedule | None:
        """The rule's schedule of ``func``, or None where it does not apply
        (the base rule applies nowhere; subclasses write theirs)."""
        return None


class WebGPUMatmul(WebGPURule):
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
        contiguous: bool = False,
    ) -> None:
        super().__init__()
        self.tiles = tiles
        self.table = dict(table or {})
        self.adaptive = adaptive
        self.contiguous = contiguous

    def _other_target(self, func: tirx.PrimFunc, target: tvm.target.Target, tunable: bool) -> Any:
        return dl.gpu.Matmul.apply(self, func, target, tunable)

    def _schedule(self, func: tirx.PrimFunc) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        blocks = sch.get_child_blocks(get_root_block(sch))
        reductions = get_reduction_blocks(sch, blocks)
        if reductions is None:
            return None
        main = reductions[0]
        if get_index_map(sch.get(main)) is None:
            return None
        k_contiguous = operands_k_contiguous(sch.get(main))
        normalize_matmul(sch, main)

        t = self._tiles_for([int(sch.get(loop).extent) for loop in sch.get_loops(main)])
        if self.contiguous:
            t = replace(t, contiguous=True)
        tile_i, tile_j = t.block_y * t.micro_y, t.block_x * t.micro_x
        sch.pad_einsum(main, [1, tile_i, tile_j, t.micro_k])
        batch, i, j, k = sch.get_loops(main)
        ko, ki = sch.split(k, [None, t.micro_k])
        if t.contiguous:
            # Each thread owns micro_y x micro_x neighbouring outputs, so that
            # its operands are neighbouring words of the k-major tiles below.
            bi, ti, ri = sch.split(i, [None, t.block_y, t.micro_y])
            bj, tj, rj = sch.split(j, [None, t.block_x, t.micro_x])
            sch.reorder(batch, bi, bj, ti, tj, ko, ki, ri, rj)
        else:
            bi, ri, ti = sch.split(i, [None, t.micro_y, t.block_y])
            bj, rj, tj = sch.split(j, [None, t.micro_x, t.block_x])
            sch.reorder(batch, bi, bj, ri, rj, ti, tj, ko, ki)
            # Virtual threads: TVM gives each its own registers (strided outputs
            # would otherwise make one sparse local array per thread).
            sch.bind(ri, "vthread.y")
            sch.bind(rj, "vthread.x")
        sch.bind(sch.fuse(batch, bi), "blockIdx.y")
        sch.bind(bj, "blockIdx.x")
        sch.bind(ti, "threadIdx.y")
        sch.bind(tj, "threadIdx.x")

        store = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(store, tj, preserve_unit_loops=True)

        tile_a = self._stage(sch, main, ko, t, 0, k_contiguous[0])
        tile_b = self._stage(sch, main, ko, t, 1, k_contiguous[1])
        for cached in (0, 1):
            local = sch.cache_read(main, cached, "local")
            sch.compute_at(local, ki, preserve_unit_loops=True)
            if t.contiguous:
                # WGSL's widest vector is 4: 8 neighbours are read as two.
                vectors, words = sch.split(sch.get_loops(local)[-1], [None, 4])
                sch.vectorize(words)
                sch.unroll(vectors)
        auto_inline_producers(sch, tile_a)
        auto_inline_producers(sch, tile_b)
        auto_inline_consumer_chain(sch, store)
        if t.contiguous:
            # Registers indexed by constants only: the products' and the stores' loops unrolled.
            for loop in (ri, rj, *sch.get_loops(store)[-2:]):
                sch.unroll(loop)
        sch.unroll(ki)
        sch.decompose_reduction(main, ko)
        return sch

    @staticmethod
    def _stage(
        sch: s_tir.Schedule, main: Any, ko: Any, t: MatmulTiles, index: int, k_fast: bool
    ) -> Any:
        """Operand ``index``'s workgroup tile for each step ``ko``, loaded by all
        threads, consecutive threads reading consecutive addresses (``k_fast``:
        the operand is stored k-contiguous); k-major where ``t.contiguous``."""
        tile = sch.cache_read(main, index, "shared")
        sch.compute_at(tile, ko, preserve_unit_loops=True)
        rows, depth = sch.get_loops(tile)[-2:]
        if t.contiguous:
            fused = _stage_k_major(sch, tile, rows, depth, k_fast)
        else:
            if not k_fast:
                sch.reorder(depth, rows)
                rows, depth = depth, rows
            fused = sch.fuse(rows, depth)
            sch.storage_align(tile, 0, axis=1, factor=16, offset=1)
        _, ty, tx = sch.split(fused, [None, t.block_y, t.block_x])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        return tile

    def _tiles_for(self, extents: list[int]) -> MatmulTiles:
        """The tiles for a matmul of normalised loop ``extents`` ``(s, i, j, k)``."""
        shape = (extents[0], extents[1], extents[2], extents[3]) if len(extents) == 4 else None
        if shape is not None and shape in self.table:
            return self.table[shape]
        t = self.tiles
        if self.adaptive and extents[0] * extents[1] * extents[2] >= LARGE_MATMUL_OUTPUTS:
            # Measured on the H200: 8x8 registers per thread win only where
            # there are enough 128x128 tiles to fill the GPU (the VAE's
            # full-resolution convolutions); elsewhere 4x4 does.
            t = replace(t, micro_x=2 * t.micro_x, micro_y=2 * t.micro_y)
        return t


def _stage_k_major(sch: s_tir.Schedule, tile: Any, rows: Any, depth: Any, k_fast: bool) -> Any:
    """``matmul_contiguous``'s staging: the tile stored k-major, rows padded by a
    vector (4 words) to stay aligned, each thread writing 4 neighbouring rows of
    one k as a vector; returns the loop to spread over the threads."""
    sch.transform_layout(tile, ("write", 0), lambda s, r, d: (s, d, r))
    sch.storage_align(tile, 0, axis=1, factor=32, offset=4)
    rows, words = sch.split(rows, [None, 4])
    if k_fast:
        sch.reorder(rows, depth, words)
        fused = sch.fuse(rows, depth)
    else:
        sch.reorder(depth, rows, words)
        fused = sch.fuse(depth, rows)
    # A convolution's gather (a condition per pixel) is no vector: its 4 words
    # are written one by one, unrolled.
    gather = any("im2col" in sch.get(b).name_hint for b in sch.get_producers(tile))
    (sch.unroll if gather else sch.vectorize)(words)
    return fused


def normalize_matmul(sch: s_tir.Schedule, main: Any) -> None:
    """Bring the matmul block ``main`` to dlight's normal form
    ``C[s, i, j] += A[s, i, k] * B[s, j, k]`` (operands and result reindexed)."""
    reindex_a = sch.reindex(main, ("read", 0))
    reindex_b = sch.reindex(main, ("read", 1))
    reindex_c = sch.reindex(main, ("write", 0))
    matmul_map, a_map, b_map, c_map = get_index_map(sch.get(main))
    sch.transform_layout(reindex_a, ("write", 0), a_map)
    sch.transform_layout(reindex_b, ("write", 0), b_map)
    sch.transform_layout(reindex_c, ("read", 0), c_map)
    sch.transform_block_layout(main, matmul_map)


def operands_k_contiguous(block: Any) -> tuple[bool, bool]:
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
    return all(operands_k_contiguous(sch.get(reductions[0])))


def _has_block(func: tirx.PrimFunc, name: str) -> bool:
    try:
        s_tir.Schedule(func).get_sblock(name)
    except Exception:
        return False
    return True
