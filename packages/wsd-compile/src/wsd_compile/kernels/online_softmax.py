"""The fused attention kernel: ``softmax(Q K^T * scale) V`` in one dispatch, its
score matrix never in memory (what :mod:`.attention` puts in place of
diffusers' attention chain), the way flash attention works:

* a workgroup owns a tile of query rows and walks the keys in blocks;
* for each block it computes the scores into workgroup memory (Q and K
  staged through it, the head dimension whole where it fits, else in chunks;
  read back one word at a time, or as ``vec4`` for wide heads), takes the
  block's row maxima, rescales what it had summed so far by
  ``exp(old max - new max)`` and adds the block's ``exp(score - max) V``;
* at the end each row is divided by its sum of exponentials.

Scores, maxima, sums and the output accumulate in fp32 whatever the storage
type (fp16 builds read and write fp16). Keys past the end of a block
(cross-attention has 77 of them) and query rows past the end of a tile are
masked, so any length works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tvm import tirx
from tvm.script import tirx as T


@dataclass(frozen=True)
class AttentionTiles:
    """The fused kernel's tiling: ``rows`` query rows per workgroup, ``rows_per_thread``
    of them for each of ``rows // rows_per_thread`` x ``threads_x`` threads, and
    ``keys`` keys per block; the head dimension is staged through workgroup memory
    whole when it fits in ``shared_bytes``, else in chunks. ``vectors``: the score
    loop reads Q and K, and the value loop the probabilities, as ``vec4`` (from
    rows padded to an odd number of vectors), else one word at a time (from rows
    of an odd number of words). ``compact``: the layout before vectors (scalar reads
    only), the head chunk rounded up to 16 words and the probabilities' and partial
    maxima's rows not padded."""

    rows: int = 64
    rows_per_thread: int = 4
    threads_x: int = 16
    keys: int = 32
    shared_bytes: int = 31 * 1024
    vectors: bool = True
    compact: bool = False

    def __post_init__(self) -> None:
        if self.compact and self.vectors:
            raise ValueError("AttentionTiles: the compact layout reads no vectors")
        if self.rows % self.rows_per_thread or self.keys % self.threads_x:
            raise ValueError(
                f"{self}: rows must be a multiple of rows_per_thread, and keys of threads_x"
            )
        if self.vectors and self.keys % 4:
            raise ValueError(f"{self}: vector reads need keys in 4s (or vectors=False)")


#: The tiling of heads up to 48 wide (SD 1.5's 40): 8 threads per row, 4 rows and 4
#: keys of a block each, scalar reads.
NARROW_ATTENTION_TILES = AttentionTiles(threads_x=8, vectors=False)
#: ... up to 160 (SDXL's 64): 16 threads per row, 4 rows and 2 keys each, the compact layout.
DEFAULT_ATTENTION_TILES = AttentionTiles(vectors=False, compact=True)


def attention_tiles(depth: int) -> AttentionTiles:
    """The tiling for a head dimension: :data:`NARROW_ATTENTION_TILES` up to 48,
    :data:`DEFAULT_ATTENTION_TILES` up to 160 (the UNets' heads), and for wider
    heads (the VAE's 512) 32 threads per row reading vectors, so that a thread's
    share of the output rows stays 72 registers. No tiling has more than 256
    threads (WebGPU's default limit).

    Measured on the H200 (``scripts/probe_attention.py``, one kernel call, fp32 /
    fp16; docs/benchmarks/raw/attention-probe/):

    * SD 1.5 512, 16 x 4096 x 4096, head 40: 2.46 / 2.32 ms with the narrow tiles,
      3.24 / 3.11 ms with the default's (the tiling before), 2.60 / 2.49 ms with 8
      threads per row reading vectors, 4.86 / 3.67 ms with 16 reading vectors.
    * SDXL 1024, 20 x 4096 x 4096, head 64: 12.7 ms (fp32) with the default's,
      20.4 ms with 8 threads per row reading vectors.
    * The VAE's 1 x 4096 x 4096, head 512: 10.47 ms reading vectors, 10.80 ms
      (compact) and 10.83 ms (scalar) without."""
    if depth <= 48:
        return NARROW_ATTENTION_TILES
    if depth <= 160:
        return DEFAULT_ATTENTION_TILES
    return AttentionTiles(rows=32, rows_per_thread=4, threads_x=32)


#: Stands in for minus infinity: exp() of it minus any real score is 0, and
#: it never makes inf - inf.
_NEG = -3.0e38


def _ceil(a: int, b: int) -> int:
    return (a + b - 1) // b


@dataclass(frozen=True)
class _Plan:
    """Every extent of one fused attention kernel (Python ints, baked into its TIR)."""

    tiles: AttentionTiles
    depth: int
    #: Head-dimension chunk staged for the scores, and output columns per thread
    #: per value chunk (``value_chunk = cols * threads_x``).
    depth_chunk: int
    cols: int

    @property
    def threads(self) -> int:
        return self.tiles.rows // self.tiles.rows_per_thread * self.tiles.threads_x

    @property
    def value_chunk(self) -> int:
        return self.cols * self.tiles.threads_x

    @property
    def staging_width(self) -> int:
        """Row length of the K/V staging buffer (see :func:`_vector_row`)."""
        return self.row(max(self.depth_chunk, self.value_chunk))

    def row(self, words: int) -> int:
        """A workgroup buffer's row length for ``words`` a row."""
        return _vector_row(words) if self.tiles.vectors else words | 1

    @property
    def p_row(self) -> int:
        """Row length of the flat probability buffer: padded, so that the two row
        groups of a warp, ``rows_per_thread`` rows apart, sit on different banks
        (not in the compact layout)."""
        return self.tiles.keys if self.tiles.compact else self.row(self.tiles.keys)

    @property
    def part_row(self) -> int:
        """Row length of the flat partial maxima and sums buffer (padded likewise)."""
        return self.tiles.threads_x if self.tiles.compact else self.tiles.threads_x | 1

    def shared_bytes(self) -> int:
        """The workgroup memory the plan takes. It counts the probability and partial
        rows padded even in the compact layout, which does not pad them, so that the
        compact layout's plans (chunks) stay those of the kernel before padding."""
        t = self.tiles
        words = (
            t.rows * self.row(self.depth_chunk)  # Q
            + t.keys * self.staging_width  # K, then V
            + t.rows * self.row(t.keys)  # scores, then probabilities
            + t.rows * (t.threads_x | 1)  # per-thread partial row maxima and sums
        )
        return 4 * words

    @staticmethod
    def make(tiles: AttentionTiles, depth: int) -> _Plan:
        """The largest chunks (fewest passes over the head dimension) that fit the
        workgroup memory ``tiles`` allows: the whole head dimension (in 4s where the
        score loop reads vectors) where it fits, else 64, 32 or 16 of it at a time."""
        per_thread = _ceil(depth, tiles.threads_x)
        align = 16 if tiles.compact else 4 if tiles.vectors else 1
        whole = _ceil(depth, align) * align
        for chunk in (whole, *(c for c in (64, 32, 16) if c < whole)):
            for cols in range(per_thread, 0, -1):
                plan = _Plan(tiles, depth, chunk, cols)
                if plan.shared_bytes() <= tiles.shared_bytes:
                    return plan
        raise ValueError(f"attention tiles {tiles} leave no room for head dimension {depth}")


def _vector_row(words: int) -> int:
    """A workgroup buffer's row length for ``words`` a row read as ``vec4``: a whole
    number of vectors, and an odd number of them, so that the 8 threads of a
    quarter-warp reading 16 bytes each from 8 different rows hit 8 different
    groups of 4 banks (SD 1.5's head dimension 40: rows of 44 words)."""
    vectors = _ceil(words, 4)
    return 4 * (vectors | 1)


class _Macros:
    """The fused kernel's pieces as TVMScript macros, each closing over the
    extents of one plan (hygienic: their Python names resolve here)."""

    def __init__(
        self, plan: _Plan, queries: int, keys: int, dtype: str, scale: float, heads: int
    ) -> None:
        t = plan.tiles
        self.plan, self.queries, self.keys = plan, queries, keys
        self.dtype, self.scale, self.heads = dtype, scale, heads
        self.ty_n, self.tx_n, self.rq = t.rows // t.rows_per_thread, t.threads_x, t.rows_per_thread
        self.kk, self.bq, self.bk = t.keys // t.threads_x, t.rows, t.keys
        self.dc, self.cols, self.vc = plan.depth_chunk, plan.cols, plan.value_chunk
        self.n_dc, self.n_vc = _ceil(plan.depth, self.dc), _ceil(plan.depth, self.vc)
        self.p_row, self.part_row = plan.p_row, plan.part_row
        self.vectors = t.vectors

    def stage(self) -> Any:
        ty_n, tx_n, threads, depth = self.ty_n, self.tx_n, self.plan.threads, self.plan.depth
        heads = self.heads

        @T.macro
        def stage(dst, src, b, first, limit, c0, rows, chunk, ty, tx):  # type: ignore[no-untyped-def]
            """``dst[r, x] = src[b, first + r, c0 + x]`` for a ``rows x chunk`` tile, 0 outside
            (``src`` holds the heads side by side: batch-head ``b`` is head ``b % heads``)."""
            for e in T.unroll(_ceil(rows * chunk, threads)):
                idx = (e * ty_n + ty) * tx_n + tx
                r, x = idx // chunk, idx % chunk
                if idx < rows * chunk:
                    if first + r < limit and c0 + x < depth:
                        col = (b % heads) * depth + c0 + x
                        dst[r, x] = T.Cast("float32", src[b // heads, first + r, col])
                    else:
                        dst[r, x] = T.float32(0)

        return stage

    def scores(self) -> Any:
        stage, ex = self.stage(), self  # the extents

        @T.macro
        def scores(s, q, k, q_sh, kv_sh, b, qt, kb, ty, tx):  # type: ignore[no-untyped-def]
            """``s[i, j]``: this thread's scaled scores of the block, masked past the last key."""
            for i in T.unroll(ex.rq):
                for j in T.unroll(ex.kk):
                    s[i, j] = T.float32(0)
            for c in T.serial(ex.n_dc):
                if ex.n_dc > 1:  # else Q was staged once, before the first block
                    stage(q_sh, q, b, qt * ex.bq, ex.queries, c * ex.dc, ex.bq, ex.dc, ty, tx)
                stage(kv_sh, k, b, kb * ex.bk, ex.keys, c * ex.dc, ex.bk, ex.dc, ty, tx)
                T.tvm_storage_sync("shared")
                if ex.vectors:  # Q and K read as vec4 along the head dimension
                    qr = T.alloc_buffer((ex.rq, 4), "float32", scope="local")
                    kr = T.alloc_buffer((ex.kk, 4), "float32", scope="local")
                    for d4 in T.unroll(ex.dc // 4):
                        for i in T.unroll(ex.rq):
                            for w in T.vectorized(4):
                                qr[i, w] = q_sh[ty * ex.rq + i, d4 * 4 + w]
                        for j in T.unroll(ex.kk):
                            for w in T.vectorized(4):
                                kr[j, w] = kv_sh[j * ex.tx_n + tx, d4 * 4 + w]
                        for w in T.unroll(4):
                            for i in T.unroll(ex.rq):
                                for j in T.unroll(ex.kk):
                                    s[i, j] = s[i, j] + qr[i, w] * kr[j, w]
                else:
                    for d in T.unroll(ex.dc):
                        for i in T.unroll(ex.rq):
                            for j in T.unroll(ex.kk):
                                s[i, j] = (
                                    s[i, j] + q_sh[ty * ex.rq + i, d] * kv_sh[j * ex.tx_n + tx, d]
                                )
                T.tvm_storage_sync("shared")
            for i in T.unroll(ex.rq):
                for j in T.unroll(ex.kk):
                    if kb * ex.bk + j * ex.tx_n + tx < ex.keys:
                        s[i, j] = s[i, j] * T.float32(ex.scale)
                    else:
                        s[i, j] = T.float32(_NEG)

        return scores

    def softmax_block(self) -> Any:
        rq, kk, tx_n, width = self.rq, self.kk, self.tx_n, self.n_vc * self.cols
        p_row, part_row = self.p_row, self.part_row

        @T.macro
        def softmax_block(s, p_sh, part_sh, m, m_new, total, acc, ty, tx):  # type: ignore[no-untyped-def]
            """Row maxima over the block (each thread's over its keys, then over the
            row's threads), ``p_sh = exp(s - max)``, running sums and accumulators
            rescaled to the new maxima."""
            part = T.alloc_buffer((rq,), "float32", scope="local")
            for i in T.unroll(rq):
                part[i] = s[i, 0]
                for j in T.unroll(1, kk):
                    part[i] = T.max(part[i], s[i, j])
                part_sh[(ty * rq + i) * part_row + tx] = part[i]
            T.tvm_storage_sync("shared")
            for i in T.unroll(rq):
                m_new[i] = m[i]
                for x in T.serial(tx_n):
                    m_new[i] = T.max(m_new[i], part_sh[(ty * rq + i) * part_row + x])
            T.tvm_storage_sync("shared")
            for i in T.unroll(rq):
                part[i] = T.float32(0)
                for j in T.unroll(kk):
                    p: T.float32 = T.exp(s[i, j] - m_new[i])
                    p_sh[(ty * rq + i) * p_row + j * tx_n + tx] = p
                    part[i] = part[i] + p
                part_sh[(ty * rq + i) * part_row + tx] = part[i]
            T.tvm_storage_sync("shared")
            for i in T.unroll(rq):
                alpha: T.float32 = T.exp(m[i] - m_new[i])
                total[i] = total[i] * alpha
                for x in T.serial(tx_n):
                    total[i] = total[i] + part_sh[(ty * rq + i) * part_row + x]
                for c in T.unroll(width):
                    acc[i, c] = acc[i, c] * alpha
                m[i] = m_new[i]

        return softmax_block

    def add_values(self) -> Any:
        stage, ex = self.stage(), self  # the extents

        @T.macro
        def add_values(acc, v, p_sh, kv_sh, b, kb, ty, tx):  # type: ignore[no-untyped-def]
            """``acc += p V`` for the block, V staged ``value_chunk`` columns at a time."""
            for c in T.serial(ex.n_vc):
                stage(kv_sh, v, b, kb * ex.bk, ex.keys, c * ex.vc, ex.bk, ex.vc, ty, tx)
                T.tvm_storage_sync("shared")
                if ex.vectors:  # the probabilities read as vec4 along the keys
                    pr = T.alloc_buffer((ex.rq, 4), "float32", scope="local")
                    for j4 in T.serial(ex.bk // 4):
                        for i in T.unroll(ex.rq):
                            for w in T.vectorized(4):
                                pr[i, w] = p_sh[(ty * ex.rq + i) * ex.p_row + j4 * 4 + w]
                        for w in T.unroll(4):
                            for i in T.unroll(ex.rq):
                                for x in T.unroll(ex.cols):
                                    acc[i, c * ex.cols + x] += (
                                        pr[i, w] * kv_sh[j4 * 4 + w, x * ex.tx_n + tx]
                                    )
                else:
                    for j in T.serial(ex.bk):
                        for i in T.unroll(ex.rq):
                            for x in T.unroll(ex.cols):
                                acc[i, c * ex.cols + x] += (
                                    p_sh[(ty * ex.rq + i) * ex.p_row + j]
                                    * kv_sh[j, x * ex.tx_n + tx]
                                )
                T.tvm_storage_sync("shared")

        return add_values

    def store(self) -> Any:
        rq, tx_n, bq, cols, vc, n_vc = self.rq, self.tx_n, self.bq, self.cols, self.vc, self.n_vc
        queries, depth, dtype, heads = self.queries, self.plan.depth, self.dtype, self.heads

        @T.macro
        def store(out, acc, total, b, qt, ty, tx):  # type: ignore[no-untyped-def]
            """Each row's sum of ``p V`` over its sum of ``p``, in the output's type."""
            for i in T.unroll(rq):
                for c in T.unroll(n_vc):
                    for x in T.unroll(cols):
                        row = qt * bq + ty * rq + i
                        col = c * vc + x * tx_n + tx
                        if row < queries and col < depth:
                            at = (b % heads) * depth + col
                            out[b // heads, row, at] = T.Cast(
                                dtype, acc[i, c * cols + x] / total[i]
                            )

        return store


def attention_kernel(
    batch: int,
    queries: int,
    keys: int,
    depth: int,
    dtype: str,
    scale: float,
    tiles: AttentionTiles | None = None,
    heads: int = 1,
) -> tirx.PrimFunc:
    """``out[b] = softmax(q[b] @ k[b]^T * scale) @ v[b]`` for ``q: [batch, queries, depth]``,
    ``k, v: [batch, keys, depth]``, all ``dtype``, as one scheduled GPU kernel
    (tiled by ``tiles``, by default :func:`attention_tiles` of ``depth``).

    With ``heads > 1`` the tensors hold the heads side by side, as the attention
    projections compute them: ``q: [batch / heads, queries, heads * depth]`` (and
    so ``k``, ``v`` and ``out``), so that no transpose splits or merges the heads."""
    plan = _Plan.make(tiles or attention_tiles(depth), depth)
    mac = _Macros(plan, queries, keys, dtype, scale, heads)
    stage, scores, softmax_block = mac.stage(), mac.scores(), mac.softmax_block()
    add_values, store, n_dc = mac.add_values(), mac.store(), mac.n_dc
    ty_n, tx_n, rq, bq, bk, width = mac.ty_n, mac.tx_n, mac.rq, mac.bq, mac.bk, mac.n_vc * mac.cols
    dc, kk, staging, f32 = mac.dc, mac.kk, plan.staging_width, "float32"
    q_row = plan.row(dc)
    n, width_all = batch // heads, heads * depth

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def attention(
        q: T.Buffer((n, queries, width_all), dtype),  # type: ignore[valid-type]
        k: T.Buffer((n, keys, width_all), dtype),  # type: ignore[valid-type]
        v: T.Buffer((n, keys, width_all), dtype),  # type: ignore[valid-type]
        out: T.Buffer((n, queries, width_all), dtype),  # type: ignore[valid-type]
    ) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        for b in T.thread_binding(batch, thread="blockIdx.y"):
            for qt in T.thread_binding(_ceil(queries, bq), thread="blockIdx.x"):
                for ty in T.thread_binding(ty_n, thread="threadIdx.y"):
                    for tx in T.thread_binding(tx_n, thread="threadIdx.x"):
                        # Rows read as vectors padded to an odd number of them (_vector_row).
                        q_sh = T.alloc_buffer((bq, q_row), f32, scope="shared")
                        kv_sh = T.alloc_buffer((bk, staging), f32, scope="shared")
                        # Flat, so that compaction keeps the padding of their rows.
                        p_sh = T.alloc_buffer((bq * mac.p_row,), f32, scope="shared")
                        part_sh = T.alloc_buffer((bq * mac.part_row,), f32, scope="shared")
                        s = T.alloc_buffer((rq, kk), f32, scope="local")
                        acc = T.alloc_buffer((rq, width), f32, scope="local")
                        m = T.alloc_buffer((rq,), f32, scope="local")
                        m_new = T.alloc_buffer((rq,), f32, scope="local")
                        total = T.alloc_buffer((rq,), f32, scope="local")
                        for i in T.unroll(rq):
                            m[i] = T.float32(_NEG)
                            total[i] = T.float32(0)
                            for c in T.unroll(width):
                                acc[i, c] = T.float32(0)
                        if n_dc == 1:
                            stage(q_sh, q, b, qt * bq, queries, 0, bq, dc, ty, tx)
                        for kb in T.serial(_ceil(keys, bk)):
                            scores(s, q, k, q_sh, kv_sh, b, qt, kb, ty, tx)
                            softmax_block(s, p_sh, part_sh, m, m_new, total, acc, ty, tx)
                            add_values(acc, v, p_sh, kv_sh, b, kb, ty, tx)
                        store(out, acc, total, b, qt, ty, tx)

    return attention
