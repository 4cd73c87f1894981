"""Group-norm statistics in two kernels: each chunk's mean and spread in one.

The Relax form of :mod:`.group_norm`'s statistics is four kernels (the chunk
sums of x and their group sums, then the same for ``(x - mean)^2``), each
reading x from memory. Here one kernel takes a chunk of a group a workgroup
(at most :data:`~.group_norm.GROUP_NORM_CHUNK` elements): two reductions in
workgroup memory give the chunk's mean and then the sum of squares about it
(M2), the second reading the chunk again while it is in the cache. A
group of one chunk is then done (the kernel writes its mean and ``1 /
sqrt(var + eps)``); a group of several takes a second, small kernel (an
invocation a group) that combines the chunks as Chan's parallel variance does:
``M2 = sum(M2_c) + n_c sum((mean_c - mean)^2)`` over chunks of ``n_c``
elements each. Both are TIR written as scheduled (thread bindings, workgroup
memory and barriers), so they build for any GPU target.
"""

from __future__ import annotations

import tvm
from tvm.script import tirx as T

#: Invocations of a chunk's workgroup (WebGPU's default limit).
THREADS = 256
_STEPS = THREADS.bit_length() - 1  # halvings of the tree reduction


@T.macro  # type: ignore[untyped-decorator]
def _tree_sum(tree: T.Buffer, tx: T.int32) -> None:
    """The sum of ``tree``'s values into ``tree[0]``, halving in workgroup
    memory, with a barrier before each halving and after the last."""
    for s in T.unroll(_STEPS):
        T.tvm_storage_sync("shared")
        if tx < T.shift_right(THREADS, s + 1):
            tree[tx] = tree[tx] + tree[tx + T.shift_right(THREADS, s + 1)]
    T.tvm_storage_sync("shared")


def chunk_stats_kernel(
    x_shape: tuple[int, ...], dtype: str, chunks: int, chunk: int, eps: float | None
) -> tvm.tirx.PrimFunc:
    """Per chunk of ``chunk`` consecutive elements of x (``chunks`` of them,
    x's elements in order): its mean and its M2, or, with ``eps``, where each
    chunk is a whole group, its mean and ``1 / sqrt(M2 / chunk + eps)``.

    x is passed twice: the first is read for the mean, the second for the
    squares about it (the chunk again, from the cache). A kernel that reads
    one tensor argument is taken by Relax for a possible reshape, a check
    that cannot read a kernel written as scheduled."""
    per_thread = -(-chunk // THREADS)
    inv = 1.0 / chunk
    final = eps is not None
    eps_value = float(eps or 0.0)
    total = chunks * chunk

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(x: T.handle, x_again: T.handle, a: T.handle, b: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        X = T.match_buffer(x, x_shape, dtype)  # noqa: N806
        X2 = T.match_buffer(x_again, x_shape, dtype)  # noqa: N806
        A = T.match_buffer(a, (chunks,), "float32")  # noqa: N806
        B = T.match_buffer(b, (chunks,), "float32")  # noqa: N806
        for c in T.thread_binding(chunks, thread="blockIdx.x"):
            for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
                flat = T.decl_buffer((total,), dtype, data=X.data)
                flat_again = T.decl_buffer((total,), dtype, data=X2.data)
                acc = T.alloc_buffer((2,), "float32", scope="local")
                tree = T.alloc_buffer((THREADS,), "float32", scope="shared")
                acc[0] = T.float32(0)
                for e in T.unroll(per_thread):
                    if e * THREADS + tx < chunk:
                        acc[0] = acc[0] + T.Cast("float32", flat[c * chunk + e * THREADS + tx])
                tree[tx] = acc[0]
                _tree_sum(tree, tx)
                acc[1] = tree[0] * T.float32(inv)  # the chunk's mean, in every invocation
                T.tvm_storage_sync("shared")
                acc[0] = T.float32(0)
                for e in T.unroll(per_thread):
                    if e * THREADS + tx < chunk:
                        d = T.Cast("float32", flat_again[c * chunk + e * THREADS + tx]) - acc[1]
                        acc[0] = acc[0] + d * d
                tree[tx] = acc[0]
                _tree_sum(tree, tx)
                if tx == 0:
                    A[c] = acc[1]
                    if final:
                        B[c] = T.rsqrt(tree[0] * T.float32(inv) + T.float32(eps_value))
                    else:
                        B[c] = tree[0]

    return kernel


def combine_stats_kernel(groups: int, chunks: int, chunk: int, eps: float) -> tvm.tirx.PrimFunc:
    """Per group of ``chunks`` consecutive chunks of ``chunk`` elements each
    (their means and M2s, from :func:`chunk_stats_kernel`): the group's mean
    and ``1 / sqrt(var + eps)``, a workgroup a group. Its invocations take
    every ``THREADS``-th chunk, and two reductions in workgroup memory give
    the mean of the chunks' means, then ``sum(M2_c) + chunk * sum((mean_c -
    mean)^2)``. (An invocation a group, summing its chunks in turn, took 0.1
    ms for the 1024 chunks of a group of the SD VAE decoder at 512x512: 32
    invocations on the whole GPU.)"""
    per_thread = -(-chunks // THREADS)
    inv = 1.0 / chunks
    size = float(chunks * chunk)

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(a: T.handle, b: T.handle, mean: T.handle, rstd: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        A = T.match_buffer(a, (groups * chunks,), "float32")  # noqa: N806
        B = T.match_buffer(b, (groups * chunks,), "float32")  # noqa: N806
        M = T.match_buffer(mean, (groups,), "float32")  # noqa: N806
        R = T.match_buffer(rstd, (groups,), "float32")  # noqa: N806
        for g in T.thread_binding(groups, thread="blockIdx.x"):
            for tx in T.thread_binding(THREADS, thread="threadIdx.x"):
                acc = T.alloc_buffer((2,), "float32", scope="local")
                tree = T.alloc_buffer((THREADS,), "float32", scope="shared")
                acc[0] = T.float32(0)
                for e in T.unroll(per_thread):
                    if e * THREADS + tx < chunks:
                        acc[0] = acc[0] + A[g * chunks + e * THREADS + tx]
                tree[tx] = acc[0]
                _tree_sum(tree, tx)
                acc[1] = tree[0] * T.float32(inv)  # the group's mean, in every invocation
                T.tvm_storage_sync("shared")
                acc[0] = T.float32(0)
                for e in T.unroll(per_thread):
                    if e * THREADS + tx < chunks:
                        d = A[g * chunks + e * THREADS + tx] - acc[1]
                        acc[0] = (
                            acc[0] + B[g * chunks + e * THREADS + tx] + T.float32(chunk) * d * d
                        )
                tree[tx] = acc[0]
                _tree_sum(tree, tx)
                if tx == 0:
                    M[g] = acc[1]
                    R[g] = T.rsqrt(tree[0] / T.float32(size) + T.float32(eps))

    return kernel
