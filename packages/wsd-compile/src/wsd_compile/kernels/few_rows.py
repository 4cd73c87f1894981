"""A schedule for matmuls of a few rows: the UNet's time-embedding projections.

Every resnet of a UNet projects the time embedding (two rows: the guidance
batch) to its channels, ``[2, 1280] x [1280, C]``, and SDXL's added
conditioning does the same at a few more places. Tiled as a general matmul
(:class:`.WebGPUMatmul`), such a product pads its two rows to a whole tile
and gives the GPU one workgroup per 64 output columns: 20 workgroups, each
stepping through all of ``k`` with a barrier per step (65 us each on the
H200, 1.4 ms of the SD 1.5 step). It is a matrix-vector product: what bounds
it is reading the weight once.

:class:`FewRowsMatmul` takes a matmul (after dlight's normalisation to
``C[s, i, j] += A[s, i, k] * B[s, j, k]``) whose rows ``s * i`` are at most
``max_rows`` and whose weight is stored with ``j`` fastest (as the lifted,
transposed weights of linear layers are):

* a workgroup has ``columns`` threads along ``j`` (consecutive weights of a
  row of ``B``: coalesced loads) times ``splits`` threads along ``k``;
* each thread sums its share of ``k`` for every row in registers
  (``rfactor``), reading each weight once for all the rows;
* the ``splits`` partial sums of each output are added across the workgroup
  (TVM's cross-thread reduction), and the epilogue (bias, casts) is applied
  where the sum lands.
"""

from __future__ import annotations

import contextlib

from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.gpu.matmul import (
    auto_inline_consumers,
    auto_inline_producers,
    get_index_map,
    get_reduction_blocks,
)

from .matmul import WebGPURule, normalize_matmul, operands_k_contiguous

#: The most rows (``s * i``) a product may have to be scheduled as few rows.
MAX_ROWS = 8
#: Threads of a workgroup along the output columns, and along ``k``: 256 in all,
#: WebGPU's default limit of invocations per workgroup.
COLUMNS, SPLITS = 32, 8


class FewRowsMatmul(WebGPURule):
    """Matmuls of at most ``max_rows`` rows as matrix-vector products (see the module)."""

    def __init__(self, max_rows: int = MAX_ROWS, columns: int = COLUMNS, splits: int = SPLITS):
        super().__init__()
        self.max_rows = max_rows
        self.columns = columns
        self.splits = splits

    def _schedule(self, func: tirx.PrimFunc) -> s_tir.Schedule | None:
        sch = s_tir.Schedule(func)
        reductions = get_reduction_blocks(sch, sch.get_child_blocks(get_root_block(sch)))
        if reductions is None or len(reductions) != 1:
            return None
        main = reductions[0]
        if get_index_map(sch.get(main)) is None or operands_k_contiguous(sch.get(main))[1]:
            return None
        # Matmuls only: a convolution of a few output channels (an implicit GEMM
        # over a 4-d image) keeps the tiled schedule, unmeasured as this.
        if any(len(read.region) > 3 for read in sch.get(main).reads):
            return None
        # Element-wise blocks of the epilogue (a bias cast, say) join their consumer.
        # (The block writing the output cannot be inlined, and stays.)
        for block in sch.get_child_blocks(get_root_block(sch)):
            if not sch.get(block).same_as(sch.get(main)):
                with contextlib.suppress(Exception):
                    sch.compute_inline(block)
        normalize_matmul(sch, main)
        extents = [int(sch.get(loop).extent) for loop in sch.get_loops(main)]
        if extents[0] * extents[1] > self.max_rows:
            return None

        sch.pad_einsum(main, [1, 1, self.columns, self.splits])
        batch, i, j, k = sch.get_loops(main)
        bj, tj = sch.split(j, [None, self.columns])
        ko, tk = sch.split(k, [None, self.splits])
        sch.reorder(bj, tj, tk, ko, batch, i)
        # Each thread's partial sums over its share of k, for every row, in registers.
        partial = sch.rfactor(tk, 0)
        bj, tj, tk, ko, batch, i = sch.get_loops(partial)
        sch.bind(bj, "blockIdx.x")
        sch.bind(tj, "threadIdx.x")
        sch.bind(tk, "threadIdx.y")
        sch.set_scope(partial, 0, "local")
        sch.decompose_reduction(partial, ko)
        sch.unroll(batch)
        sch.unroll(i)
        # The partial sums added across the k threads, then the epilogue.
        sch.reverse_compute_at(main, tj, preserve_unit_loops=True)
        across, *rows = sch.get_loops(main)[2:]
        sch.reorder(*rows, across)
        sch.bind(across, "threadIdx.y")
        auto_inline_producers(sch, partial)
        auto_inline_consumers(sch, main)
        for consumer in sch.get_consumers(main):
            sch.reverse_compute_at(consumer, tj, preserve_unit_loops=True)
        sch.set_scope(main, 0, "local")
        return sch
