"""Attention on tensor cores: two batched matmuls around a softmax, in chunks of queries.

On the ``subgroup-matrix`` path the products of attention run on tensor cores
(:mod:`.subgroup_matrix`, batched), far faster than the fused scalar kernel
(the ``attention`` module), but the score matrix between them is stored: 1 GiB of
fp32 at SD 1.5 512's 64x64 level (16 x 4096 x 4096), 1.25 GiB at SDXL 1024's.
So an attention whose score matrix would be larger than a chunk is computed
for equal ranges of query rows one after another (rows are independent: the
softmax runs along the keys), each range's scores at most ``max_bytes``; the
ranges' outputs are joined along the rows. The chunks' score matrices have
one shape and never live at the same time, so the memory plan gives them one
buffer.

Keys not in 16s (cross-attention's 77 text tokens) are padded to 16s here,
K and V with zero rows, and the softmax reads the padded scores and writes
zero probabilities for the padded keys: the products get aligned operands
(no slice of their scores) and the numbers are those of the unpadded chain.
"""

from __future__ import annotations

from tvm import relax, te, tirx, topi

from .shapes import pad_after, static_shape
from .subgroup_gemm import SIDE

#: Below every real scaled score: a padded key's exponent underflows to 0.
_PADDED_SCORE = -3.0e38


def scaled_softmax(scores: te.Tensor, scale: float, keys: int | None = None) -> te.Tensor:
    """``softmax(scores * scale)`` along the last axis, in the scores' dtype
    (fp32): one kernel, the scale applied as the softmax reads each score.
    With ``keys``, only the first ``keys`` columns are scores (the rest pad
    the row): their probabilities are those of the unpadded row, and the
    padding's are 0."""

    def scaled_score(*i: tirx.PrimExpr) -> tirx.PrimExpr:
        value = scores(*i) * tirx.const(scale, scores.dtype)
        if keys is None:
            return value
        return tirx.Select(i[-1] < keys, value, tirx.const(_PADDED_SCORE, scores.dtype))

    scaled = te.compute(scores.shape, scaled_score, name="scaled")
    result: te.Tensor = topi.nn.softmax(scaled, axis=-1)
    return result


def query_chunks(batch: int, queries: int, keys: int, max_bytes: int) -> int:
    """Into how many equal ranges of query rows an attention is split so that
    each range's fp32 scores (``batch x rows x keys``) take at most
    ``max_bytes``; 1 when they fit whole, 0 when no split of ``queries`` fits."""
    for chunks in range(1, queries + 1):
        if queries % chunks == 0 and 4 * batch * (queries // chunks) * keys <= max_bytes:
            return chunks
    return 0


def chunked_attention(
    bb: relax.BlockBuilder,
    q: relax.Expr,
    k: relax.Expr,
    v: relax.Expr,
    scale: float,
    max_bytes: int,
) -> relax.Expr | None:
    """``softmax(Q K^T scale) V`` (3-D: ``[batch, queries or keys, depth]``)
    emitted into ``bb``, the scores summed and stored in fp32 and scaled in
    the softmax (:func:`scaled_softmax`), the rest in Q's dtype, over ranges
    of queries whose scores take at most ``max_bytes`` (:func:`query_chunks`);
    None when no split fits. (Scaling Q in fp16 before the product instead
    rounds it once more: the two-LoRA GPU parity case missed its latent bar
    that way.)"""
    q_shape, k_shape = static_shape(q), static_shape(k)
    if q_shape is None or k_shape is None:
        return None
    (batch, queries, _), keys = q_shape, k_shape[1]
    pad = -keys % SIDE
    chunks = query_chunks(batch, queries, keys + pad, max_bytes)
    if chunks == 0:
        return None
    dtype = str(q.ty.dtype)
    if pad:
        k = bb.emit(relax.op.nn.pad(k, pad_after(3, {1: pad})))
        v = bb.emit(relax.op.nn.pad(v, pad_after(3, {1: pad})))
    k_t = bb.emit(relax.op.permute_dims(k, [0, 2, 1]))
    rows = queries // chunks
    outputs = []
    for c in range(chunks):
        part = q
        if chunks > 1:
            part = bb.emit(relax.op.strided_slice(q, [1], [c * rows], [(c + 1) * rows]))
        scores = bb.emit(relax.op.matmul(part, k_t, out_dtype="float32"))
        probabilities = bb.emit(
            bb.call_te(
                scaled_softmax,
                scores,
                scale=scale,
                keys=keys if pad else None,
                primfunc_name_hint="scaled_softmax",
            )
        )
        weights = bb.emit(relax.op.astype(probabilities, dtype))
        outputs.append(bb.emit(relax.op.matmul(weights, v)))
    return outputs[0] if chunks == 1 else relax.op.concat(outputs, axis=1)
