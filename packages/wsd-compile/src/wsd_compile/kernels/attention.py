"""Fused attention: one kernel, online softmax, no score matrix in memory.

diffusers' classic attention (what the capture exports: WebGPU rejects the
graph of torch's ``scaled_dot_product_attention``) is, per batch-head,
``softmax(Q K^T * scale) V`` as two batched matmuls around a softmax, and
the score matrix between them is a tensor of its own: 16 x 4096 x 4096
floats (1 GiB) in an SD 1.5 UNet at 512x512, more than many devices let one
binding hold. ``fuse_attention``, run before legalization, finds that chain
in the Relax graph (with or without the casts around the softmax that fp16
builds have) and replaces it with one call to a hand-written kernel
(:func:`attention_kernel`), the way flash attention works:

* a workgroup owns a tile of query rows and walks the keys in blocks;
* for each block it computes the scores into workgroup memory (Q and K
  staged through it in chunks of the head dimension), takes the block's row
  maxima, rescales what it had summed so far by ``exp(old max - new max)``
  and adds the block's ``exp(score - max) V``;
* at the end each row is divided by its sum of exponentials.

Scores, maxima, sums and the output accumulate in fp32 whatever the storage
type (fp16 builds read and write fp16). Keys past the end of a block
(cross-attention has 77 of them) and query rows past the end of a tile are
masked, so any length works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax, tirx
from tvm.relax.expr_functor import PyExprMutator, mutator
from tvm.script import tirx as T

from .chunked_attention import chunked_attention
from .flash_attention import FlashTiles, flash_attention_kernel, flash_fits
from .shapes import static_shape


@dataclass(frozen=True)
class AttentionTiles:
    """The fused kernel's tiling: ``rows`` query rows per workgroup, ``rows_per_thread``
    of them for each of ``rows // rows_per_thread`` x ``threads_x`` threads, and
    ``keys`` keys per block; the head dimension is staged through workgroup memory
    whole when it fits in ``shared_bytes``, else in chunks."""

    rows: int = 64
    rows_per_thread: int = 4
    threads_x: int = 16
    keys: int = 32
    shared_bytes: int = 31 * 1024


DEFAULT_ATTENTION_TILES = AttentionTiles()


def attention_tiles(depth: int) -> AttentionTiles:
    """The tiling for a head dimension: the default (16 threads per row, 4 rows
    each) up to 160, which the UNets' heads have; 32 threads per row for wider
    heads (the VAE's 512), so that a thread's share of the output rows stays 72
    registers. No tiling has more than 256 threads (WebGPU's default limit).

    Measured on the H200 (SD 1.5 512 fp16, the 4096-token attention, 5 calls per
    UNet step): 8 threads per row with 4x4 scores per thread (128 threads) took
    18.2 ms against the default's 15.7 ms, so the narrow heads keep the default."""
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
        return _vector_row(max(self.depth_chunk, self.value_chunk))

    def shared_bytes(self) -> int:
        t = self.tiles
        words = (
            t.rows * _vector_row(self.depth_chunk)  # Q
            + t.keys * self.staging_width  # K, then V
            + t.rows * _vector_row(t.keys)  # scores, then probabilities
            + t.rows * (t.threads_x | 1)  # per-thread partial row maxima and sums
        )
        return 4 * words

    @staticmethod
    def make(tiles: AttentionTiles, depth: int) -> _Plan:
        """The largest chunks (fewest passes over the head dimension) that fit the
        workgroup memory ``tiles`` allows: the whole head dimension (in 4s, as the
        score loop reads it) where it fits, else 64, 32 or 16 of it at a time."""
        if tiles.keys % 4:
            raise ValueError(f"attention tiles {tiles}: keys must be a multiple of 4")
        per_thread = _ceil(depth, tiles.threads_x)
        whole = _ceil(depth, 4) * 4
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
        #: Row lengths of the flat probability and partial-maxima buffers: the two
        #: row groups of a warp, ``rows_per_thread`` rows apart, on different banks.
        self.p_row, self.part_row = _vector_row(t.keys), t.threads_x | 1

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
        stage, rq, kk, tx_n, bq, bk, dc, n_dc = (
            self.stage(),
            self.rq,
            self.kk,
            self.tx_n,
            self.bq,
            self.bk,
            self.dc,
            self.n_dc,
        )
        queries, keys, scale = self.queries, self.keys, self.scale

        @T.macro
        def scores(s, q, k, q_sh, kv_sh, b, qt, kb, ty, tx):  # type: ignore[no-untyped-def]
            """``s[i, j]``: this thread's scaled scores of the block, masked past the last key."""
            for i in T.unroll(rq):
                for j in T.unroll(kk):
                    s[i, j] = T.float32(0)
            for c in T.serial(n_dc):
                if n_dc > 1:  # else Q was staged once, before the first block
                    stage(q_sh, q, b, qt * bq, queries, c * dc, bq, dc, ty, tx)
                stage(kv_sh, k, b, kb * bk, keys, c * dc, bk, dc, ty, tx)
                T.tvm_storage_sync("shared")
                # Q and K read as vec4 along the head dimension: 6 reads for 32 FMAs.
                qr = T.alloc_buffer((rq, 4), "float32", scope="local")
                kr = T.alloc_buffer((kk, 4), "float32", scope="local")
                for d4 in T.unroll(dc // 4):
                    for i in T.unroll(rq):
                        for w in T.vectorized(4):
                            qr[i, w] = q_sh[ty * rq + i, d4 * 4 + w]
                    for j in T.unroll(kk):
                        for w in T.vectorized(4):
                            kr[j, w] = kv_sh[j * tx_n + tx, d4 * 4 + w]
                    for w in T.unroll(4):
                        for i in T.unroll(rq):
                            for j in T.unroll(kk):
                                s[i, j] = s[i, j] + qr[i, w] * kr[j, w]
                T.tvm_storage_sync("shared")
            for i in T.unroll(rq):
                for j in T.unroll(kk):
                    if kb * bk + j * tx_n + tx < keys:
                        s[i, j] = s[i, j] * T.float32(scale)
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
        stage, rq, tx_n, bk, cols, vc, n_vc, keys = (
            self.stage(),
            self.rq,
            self.tx_n,
            self.bk,
            self.cols,
            self.vc,
            self.n_vc,
            self.keys,
        )
        p_row = self.p_row

        @T.macro
        def add_values(acc, v, p_sh, kv_sh, b, kb, ty, tx):  # type: ignore[no-untyped-def]
            """``acc += p V`` for the block, V staged ``value_chunk`` columns at a time."""
            for c in T.serial(n_vc):
                stage(kv_sh, v, b, kb * bk, keys, c * vc, bk, vc, ty, tx)
                T.tvm_storage_sync("shared")
                # The probabilities read as vec4 along the keys.
                pr = T.alloc_buffer((rq, 4), "float32", scope="local")
                for j4 in T.serial(bk // 4):
                    for i in T.unroll(rq):
                        for w in T.vectorized(4):
                            pr[i, w] = p_sh[(ty * rq + i) * p_row + j4 * 4 + w]
                    for w in T.unroll(4):
                        for i in T.unroll(rq):
                            for x in T.unroll(cols):
                                acc[i, c * cols + x] += pr[i, w] * kv_sh[j4 * 4 + w, x * tx_n + tx]
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
    q_row = _vector_row(dc)
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


@dataclass(frozen=True)
class _Chain:
    """A matched attention chain: its Q, K (not transposed), V and the scale."""

    q: relax.Expr
    k: relax.Expr
    v: relax.Expr
    scale: float


def _const_value(expr: relax.Expr) -> float | None:
    if isinstance(expr, tvm.ir.expr.Constant):
        data = expr.value.numpy()
        if data.shape == ():
            return float(data)
    return None


#: Splits ``[n, l, h, d]`` into heads (and back): the axes of the head transposes.
_HEAD_AXES = [0, 2, 1, 3]


@mutator
class _AttentionFuser(PyExprMutator):  # type: ignore[misc]
    """Replace ``matmul(softmax(matmul(q, permute(k)) * c), v)`` (3-D, static
    shapes, casts around the softmax allowed) with one fused kernel call.

    ``heads=True``: only chains whose Q, K and V are split into heads by
    ``reshape -> permute_dims -> reshape`` and whose output is merged back the
    same way, rooted at the merging reshape; the kernel then reads and writes
    the heads side by side and the six transposes go. ``heads=False``: any
    chain, rooted at its last matmul."""

    def __init__(
        self,
        mod: tvm.IRModule,
        tiles: AttentionTiles | None,
        *,
        heads: bool,
        min_bytes: int,
        chunk_bytes: int = 0,
        flash: FlashTiles | None = None,
    ) -> None:
        super().__init__(mod)
        self.tiles, self.heads, self.min_bytes = tiles, heads, min_bytes
        self.chunk_bytes, self.flash = chunk_bytes, flash
        self.ops = {
            name: tvm.ir.Op.get(f"relax.{name}")
            for name in ("matmul", "nn.softmax", "astype", "multiply", "permute_dims", "reshape")
        }
        self.kernels: dict[tuple[int, ...] | tuple[object, ...], relax.GlobalVar] = {}

    def _producer(self, expr: relax.Expr, op: str, *, casts: bool = True) -> relax.Call | None:
        """The call to ``op`` that ``expr`` is bound to, looking through casts if ``casts``."""
        while True:
            if isinstance(expr, relax.Var):
                bound = self.lookup_binding(expr)
                if bound is None:
                    return None
                expr = bound
            if not isinstance(expr, relax.Call):
                return None
            if expr.op == self.ops[op]:
                return expr
            if casts and expr.op == self.ops["astype"] and op != "astype":
                expr = expr.args[0]
                continue
            return None

    def _scale(self, scaled: relax.Call) -> tuple[relax.Call, float] | None:
        """The scores matmul under ``scaled`` (a multiply by a scalar constant) and the scale."""
        for lhs, rhs in (scaled.args, tuple(reversed(scaled.args))):
            value = _const_value(rhs)
            if value is None:
                cast = self._producer(rhs, "astype")
                value = _const_value(cast.args[0]) if cast is not None else None
            scores = self._producer(lhs, "matmul")
            if value is not None and scores is not None:
                return scores, value
        return None

    def _match(self, call: relax.Call) -> _Chain | None:
        softmax = self._producer(call.args[0], "nn.softmax")
        if softmax is None or int(softmax.attrs.axis) not in (-1, 2):
            return None
        scaled = self._producer(softmax.args[0], "multiply")
        found = self._scale(scaled) if scaled is not None else None
        if found is None:
            return None
        scores, scale = found
        k_t = self._producer(scores.args[1], "permute_dims")
        if k_t is None or [int(a) for a in k_t.attrs.axes] != [0, 2, 1]:
            return None
        return _Chain(scores.args[0], k_t.args[0], call.args[1], scale)

    def _split_heads(self, expr: relax.Expr) -> tuple[relax.Expr, int] | None:
        """``(x, h)`` when ``expr`` is ``x: [n, l, h * d]`` split into ``[n * h, l, d]`` by
        ``reshape -> permute_dims(0, 2, 1, 3) -> reshape``."""
        outer = self._producer(expr, "reshape", casts=False)
        perm = (
            self._producer(outer.args[0], "permute_dims", casts=False)
            if outer is not None
            else None
        )
        if perm is None or [int(a) for a in perm.attrs.axes] != _HEAD_AXES:
            return None
        inner = self._producer(perm.args[0], "reshape", casts=False)
        split = static_shape(perm.args[0])
        if inner is None or split is None:
            return None
        x = inner.args[0]
        n, length, heads, depth = split
        if static_shape(x) != [n, length, heads * depth]:
            return None
        return x, heads

    def _emit(self, chain: _Chain, shapes: list[list[int]], heads: int) -> relax.Expr | None:
        """The kernel call for ``chain`` whose Q, K, V have ``shapes`` (heads side by side
        when ``heads > 1``), or None when they do not fit together."""
        dtypes = {str(x.ty.dtype) for x in (chain.q, chain.k, chain.v)}
        if len(dtypes) != 1 or any(len(s) != 3 for s in shapes):
            return None
        (n, queries, width), (nk, keys, kw), vshape = shapes
        dtype = dtypes.pop()
        if (nk, kw) != (n, width) or vshape != [n, keys, width] or width % heads:
            return None
        batch, depth = n * heads, width // heads
        if 4 * batch * queries * keys <= self.min_bytes:
            return None  # a score matrix this small is cheaper stored (see fuse_attention_pass)
        if self.chunk_bytes:
            q, k, v = chain.q, chain.k, chain.v
            if self.flash and dtype == "float16" and flash_fits(queries, keys, depth, self.flash):
                found: tuple[object, ...] = ("flash", batch, queries, keys, depth, chain.scale)
                if found not in self.kernels:
                    kernel = flash_attention_kernel(
                        batch, queries, keys, depth, chain.scale, self.flash
                    )
                    self.kernels[found] = self.builder_.add_func(kernel, "flash_attention")
                out = relax.TensorType((n, queries, width), dtype)
                return relax.call_tir(self.kernels[found], [q, k, v], out)
            return chunked_attention(self.builder_, q, k, v, chain.scale, self.chunk_bytes)
        key = (batch, queries, keys, depth, dtype, chain.scale, heads)
        if key not in self.kernels:
            kernel = attention_kernel(
                batch, queries, keys, depth, dtype, chain.scale, self.tiles, heads
            )
            self.kernels[key] = self.builder_.add_func(kernel, "fused_attention")
        out = relax.TensorType((n, queries, width), dtype)
        return relax.call_tir(self.kernels[key], [chain.q, chain.k, chain.v], out)

    def _fold_heads(self, call: relax.Call) -> relax.Expr | None:
        """``call`` (a reshape merging heads) with the attention under it fused."""
        perm = self._producer(call.args[0], "permute_dims", casts=False)
        if perm is None or [int(a) for a in perm.attrs.axes] != _HEAD_AXES:
            return None
        inner = self._producer(perm.args[0], "reshape", casts=False)
        attn = self._producer(inner.args[0], "matmul", casts=False) if inner is not None else None
        chain = self._match(attn) if attn is not None else None
        if chain is None:
            return None
        split = [self._split_heads(x) for x in (chain.q, chain.k, chain.v)]
        if any(s is None for s in split) or len({s[1] for s in split if s}) != 1:
            return None
        xs = [s[0] for s in split if s]
        heads = split[0][1] if split[0] else 1
        if attn is None or str(attn.ty.dtype) != str(xs[0].ty.dtype):
            return None
        shapes = [static_shape(x) or [] for x in xs]
        if static_shape(call) != shapes[0]:  # the merged output is shaped like q
            return None
        return self._emit(_Chain(xs[0], xs[1], xs[2], chain.scale), shapes, heads)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if self.heads and call.op == self.ops["reshape"]:
            folded = self._fold_heads(call)
            return call if folded is None else folded
        if self.heads or call.op != self.ops["matmul"]:
            return call
        chain = self._match(call)
        if chain is None or str(call.ty.dtype) != str(chain.q.ty.dtype):
            return call
        shapes = [static_shape(x) or [] for x in (chain.q, chain.k, chain.v)]
        fused = self._emit(chain, shapes, 1)
        return call if fused is None else fused


#: Attention whose fp32 score matrix is at most this large stays two matmuls
#: around a softmax (see :func:`fuse_attention_pass`).
FUSE_ABOVE_BYTES = 256 * 2**20


def fuse_attention_pass(
    tiles: AttentionTiles | None = None,
    min_bytes: int = FUSE_ABOVE_BYTES,
    chunk_bytes: int = 0,
    flash: FlashTiles | None = None,
) -> tvm.transform.Pass:
    """The pass replacing every matched attention chain of ``mod``'s Relax
    functions whose fp32 score matrix would be larger than ``min_bytes`` with a
    fused kernel tiled by ``tiles`` (by default :func:`attention_tiles` of its
    head dimension), dropping the chains' dead bindings.

    Smaller attention stays unfused because wsd's tiled matmuls and the
    softmax are faster than the fused kernel there (measured on the H200:
    SDXL's 60 attentions over 1024 tokens took 94 ms a UNet step fused); the
    threshold keeps every score matrix a device binds within 256 MiB, the VAE
    decoder's largest activation at SD 1.5 512. The chains whose heads fold
    into the kernel are replaced first, then the rest.

    ``chunk_bytes`` (the ``subgroup-matrix`` path): no fused kernel; the
    chains stay matmuls around a softmax (on tensor cores there), computed in
    ranges of query rows whose scores take at most ``chunk_bytes``
    (:mod:`.chunked_attention`). With ``flash`` too, the chains that
    :func:`.flash_attention.flash_fits` takes are one kernel on tensor cores
    instead (:mod:`.flash_attention`)."""

    @tvm.transform.module_pass(opt_level=0, name="wsd.FuseAttention")  # type: ignore[untyped-decorator]
    def fuse_attention(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        for heads in (False,) if chunk_bytes else (True, False):
            fuser = _AttentionFuser(
                mod, tiles, heads=heads, min_bytes=min_bytes, chunk_bytes=chunk_bytes, flash=flash
            )
            for gvar, func in mod.functions_items():
                if isinstance(func, relax.Function):
                    fuser.builder_.update_func(gvar, fuser.visit_expr(func))
            mod = relax.transform.DeadCodeElimination()(fuser.builder_.get())
        return mod

    return fuse_attention


fuse_attention = fuse_attention_pass()
