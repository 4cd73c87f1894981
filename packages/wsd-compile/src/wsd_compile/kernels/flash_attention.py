"""Attention fused on tensor cores: the subgroup-matrix path's attention as one kernel.

On the ``subgroup-matrix`` path attention was two batched products on tensor
cores around a softmax over a stored score matrix (:mod:`.chunked_attention`):
about 11 ms of SD 1.5 512's 59 ms step on the H200, for products that take a
fraction of that. Here the whole of ``softmax(Q K^T scale) V`` is one kernel
(the online softmax of FlashAttention), Q, K, V and the output ``[batch, n,
depth]`` in fp16, the depth zero-padded to 16s in workgroup memory:

- a workgroup of ``subgroups`` subgroups owns 32 query rows per subgroup of
  one head; each subgroup keeps its Q matrices and its output (f32 sums) in
  subgroup matrices from the start to the end;
- per block of ``keys`` keys, K's and V's rows are staged in workgroup
  memory, shared by the subgroups; each subgroup's scores ``Q K^T`` go to
  workgroup memory (f32), where each invocation takes one row: its maximum,
  the exponentials (``exp2``, the scale folded in) written as P in fp16, and
  its running sum; then ``P V`` adds to the output on tensor cores;
- subgroup matrices give no access to their elements, so the output is
  rescaled through workgroup memory, in every block and without a branch
  (on Dawn over NVIDIA's Vulkan driver a subgroup-matrix variable assigned
  inside an ``if``, even a uniform one, comes out wrong: docs/kernels.md);
  a row's factor is 1 where its maximum did not grow, and P is at most 1;
- the invocations of a subgroup start their rows at different columns, so
  that they read different banks of workgroup memory.

The kernel is TIR whose body is WGSL text, as :mod:`.subgroup_gemm`'s (the
name of a ``call_extern`` statement ending in a line comment); its workgroup
buffers are allocated in TIR. ``node/probe_subgroup_matrix.mjs --attention``
times the same design with its variants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm.script import tirx as T

from .subgroup_gemm import SIDE, SUBGROUP

#: Query rows of one subgroup: one invocation each in the softmax.
ROWS = SUBGROUP
#: What the kernel's workgroup memory may take: what Apple's and D3D12's
#: adapters allow (the page asks the adapter for its limit).
WORKGROUP_BYTES = 32 * 1024


@dataclass(frozen=True)
class FlashTiles:
    """How the fused kernel is tiled."""

    #: Subgroups of a workgroup (each 32 query rows), sharing K's and V's blocks.
    subgroups: int = 1
    #: Keys of a block.
    keys: int = 64


@dataclass(frozen=True)
class _Shape:
    batch: int
    queries: int
    keys: int
    depth: int
    scale: float
    tiles: FlashTiles

    @property
    def padded(self) -> int:
        return -(-self.depth // SIDE) * SIDE

    @property
    def block_rows(self) -> int:
        return ROWS * self.tiles.subgroups

    @property
    def threads(self) -> int:
        return SUBGROUP * self.tiles.subgroups

    def buffer_sizes(self) -> dict[str, tuple[int, str]]:
        """The workgroup buffers: elements and dtype."""
        kb, rows, dp = self.tiles.keys, self.block_rows, self.padded
        return {
            "wsd_fk": (kb * dp, "float16"),
            "wsd_fv": (kb * dp, "float16"),
            "wsd_fs": (rows * kb, "float32"),
            "wsd_fp": (rows * kb, "float16"),
            "wsd_fa": (rows, "float32"),
        }

    def workgroup_bytes(self) -> int:
        size = {"float16": 2, "float32": 4, "int32": 4}
        return sum(n * size[dtype] for n, dtype in self.buffer_sizes().values())


def flash_fits(queries: int, keys: int, depth: int, tiles: FlashTiles = FlashTiles()) -> bool:
    """Whether the fused kernel takes an attention of this shape: whole blocks
    of queries and keys, a depth of 4s whose padded rows fit a block (the
    output goes through the scores' buffer), within :data:`WORKGROUP_BYTES`."""
    shape = _Shape(1, queries, keys, depth, 1.0, tiles)
    return (
        queries % shape.block_rows == 0
        and keys % tiles.keys == 0
        and tiles.keys % SIDE == 0
        and depth % 4 == 0
        and shape.padded <= tiles.keys
        and shape.workgroup_bytes() <= WORKGROUP_BYTES
    )


def _matrices(s: _Shape) -> dict[str, list[str]]:
    """The subgroup-matrix statements: Q's and the output's matrices, each
    16 keys' scores (a scope each), the output to and from the scores' buffer,
    and each 16 keys' ``P V``."""
    dp, kb, left = s.padded, s.tiles.keys, "subgroup_matrix_left<f16, 16, 16>"
    right, result = "subgroup_matrix_right<f16, 16, 16>", "subgroup_matrix_result<f32, 16, 16>"
    pairs = [(t, d) for t in range(ROWS // SIDE) for d in range(dp // SIDE)]

    def at(t: int, d: int) -> str:
        return f"(wsd_sr + {SIDE * t}u) * {dp}u + {SIDE * d}u"

    scores, pv = [], []
    for j in range(kb // SIDE):
        lines = [f"var wsd_s{t} = {result}();" for t in range(ROWS // SIDE)]
        for d in range(dp // SIDE):
            lines.append(
                f"let wsd_k{d} = subgroupMatrixLoad<{right}>(&wsd_fk, "
                f"{SIDE * (j * dp + d)}u, true, {dp}u);"
            )
            lines += [
                f"wsd_s{t} = subgroupMatrixMultiplyAccumulate(wsd_q{t}_{d}, wsd_k{d}, wsd_s{t});"
                for t in range(ROWS // SIDE)
            ]
        lines += [
            f"subgroupMatrixStore(&wsd_fs, (wsd_sr + {SIDE * t}u) * {kb}u + {SIDE * j}u, "
            f"wsd_s{t}, false, {kb}u);"
            for t in range(ROWS // SIDE)
        ]
        scores.append("{ " + " ".join(lines) + " }")
        lines = [
            f"let wsd_p{t} = subgroupMatrixLoad<{left}>(&wsd_fp, "
            f"(wsd_sr + {SIDE * t}u) * {kb}u + {SIDE * j}u, false, {kb}u);"
            for t in range(ROWS // SIDE)
        ]
        for d in range(dp // SIDE):
            lines.append(
                f"let wsd_v{d} = subgroupMatrixLoad<{right}>(&wsd_fv, "
                f"{SIDE * (j * dp + d)}u, false, {dp}u);"
            )
            lines += [
                f"wsd_o{t}_{d} = subgroupMatrixMultiplyAccumulate("
                f"wsd_p{t}, wsd_v{d}, wsd_o{t}_{d});"
                for t in range(ROWS // SIDE)
            ]
        pv.append("{ " + " ".join(lines) + " }")
    return {
        "q": [
            f"let wsd_q{t}_{d} = subgroupMatrixLoad<{left}>(&wsd_fp, {at(t, d)}, false, {dp}u);"
            for t, d in pairs
        ],
        "o": [f"var wsd_o{t}_{d} = {result}();" for t, d in pairs],
        "scores": scores,
        "store": [
            f"subgroupMatrixStore(&wsd_fs, {at(t, d)}, wsd_o{t}_{d}, false, {dp}u);"
            for t, d in pairs
        ],
        "load": [
            f"wsd_o{t}_{d} = subgroupMatrixLoad<{result}>(&wsd_fs, {at(t, d)}, false, {dp}u);"
            for t, d in pairs
        ],
        "pv": pv,
    }


def _staging(s: _Shape) -> dict[str, list[str]]:
    """Q's rows of the workgroup into ``wsd_fp`` (free until the first
    block's P), and a block's rows of K and V into ``wsd_fk``, ``wsd_fv``:
    rows of the padded depth, zeros past the depth."""
    dp, d, threads, kb = s.padded, s.depth, s.threads, s.tiles.keys
    q = [
        f"for (var wsd_e = wsd_li; wsd_e < {s.block_rows * dp}u; wsd_e += {threads}u) {{",
        f"let wsd_r = wsd_e / {dp}u; let wsd_c = wsd_e % {dp}u; var wsd_x = f16(0);",
        f"if (wsd_c < {d}u) {{ wsd_x = "
        f"Q_ptr[(wsd_b * {s.queries}u + wsd_q0 + wsd_r) * {d}u + wsd_c]; }}",
        f"wsd_fp[wsd_r * {dp}u + wsd_c] = wsd_x;",
        "}",
    ]
    kv = [
        f"for (var wsd_e = wsd_li; wsd_e < {kb * dp}u; wsd_e += {threads}u) {{",
        f"let wsd_r = wsd_e / {dp}u; let wsd_c = wsd_e % {dp}u;",
        "var wsd_kx = f16(0); var wsd_vx = f16(0);",
        f"if (wsd_c < {d}u) {{ let wsd_at = (wsd_b * {s.keys}u + wsd_kb + wsd_r) * {d}u + wsd_c;",
        "wsd_kx = K_ptr[wsd_at]; wsd_vx = V_ptr[wsd_at]; }",
        "wsd_fk[wsd_e] = wsd_kx; wsd_fv[wsd_e] = wsd_vx;",
        "}",
    ]
    return {"q": q, "kv": kv}


def _softmax(s: _Shape) -> list[str]:
    """One block's softmax, an invocation a row: its maximum (scaled, in
    log2), the running maximum and the row's rescale factor (1 where the
    maximum did not grow), P in fp16 and the running sum; no branch."""
    kb, scale = s.tiles.keys, math.log2(math.e) * s.scale
    return [
        f"let wsd_at = wsd_row * {kb}u;",
        "var wsd_mx = -1e30;",
        f"for (var wsd_c = 0u; wsd_c < {kb}u; wsd_c++) {{",
        f"wsd_mx = max(wsd_mx, wsd_fs[wsd_at + (wsd_c + wsd_lane) % {kb}u]); }}",
        f"wsd_mx *= {scale!r};",
        "let wsd_mn = max(wsd_m, wsd_mx);",
        "let wsd_alpha = exp2(wsd_m - wsd_mn);",
        "wsd_m = wsd_mn;",
        "wsd_fa[wsd_row] = wsd_alpha;",
        "var wsd_total = 0.0;",
        f"for (var wsd_c = 0u; wsd_c < {kb}u; wsd_c++) {{",
        f"let wsd_i = wsd_at + (wsd_c + wsd_lane) % {kb}u;",
        f"let wsd_pe = f16(exp2(wsd_fs[wsd_i] * {scale!r} - wsd_m));",
        "wsd_fp[wsd_i] = wsd_pe; wsd_total += f32(wsd_pe); }",
        "wsd_l = wsd_l * wsd_alpha + wsd_total;",
    ]


def flash_wgsl(s: _Shape) -> str:
    """The kernel's statements, as WGSL ending in a line comment."""
    m, staged, dp, d = _matrices(s), _staging(s), s.padded, s.depth
    # Every block, without a branch: the output's matrices are reassigned here.
    rescale = [
        "workgroupBarrier();",
        *m["store"],
        "workgroupBarrier();",
        f"for (var wsd_c = 0u; wsd_c < {dp}u; wsd_c++) {{",
        f"wsd_fs[wsd_row * {dp}u + (wsd_c + wsd_lane) % {dp}u] *= wsd_fa[wsd_row]; }}",
        "workgroupBarrier();",
        *m["load"],
    ]
    lines = [
        "let wsd_li = threadIdx.x;",
        "let wsd_b = blockIdx.y;",
        f"let wsd_q0 = (blockIdx.z * gridDim.x + blockIdx.x) * {s.block_rows}u;",
        "let wsd_lane = wsd_li % 32u;",
        f"let wsd_sr = wsd_li / 32u * {ROWS}u;",
        "let wsd_row = wsd_sr + wsd_lane;",
        "@diagnostic(off, chromium.subgroup_matrix_uniformity) {",
        *staged["q"],
        "workgroupBarrier();",
        *m["q"],
        *m["o"],
        "var wsd_m = -1e30;",
        "var wsd_l = 0.0;",
        f"for (var wsd_kb = 0u; wsd_kb < {s.keys}u; wsd_kb += {s.tiles.keys}u) {{",
        "workgroupBarrier();",
        *staged["kv"],
        "workgroupBarrier();",
        *m["scores"],
        "workgroupBarrier();",
        *_softmax(s),
        *rescale,
        *m["pv"],
        "}",
        "workgroupBarrier();",
        *m["store"],
        "workgroupBarrier();",
        "let wsd_inv = 1.0 / wsd_l;",
        f"for (var wsd_c = 0u; wsd_c < {d}u; wsd_c++) {{",
        f"let wsd_x = (wsd_c + wsd_lane) % {d}u;",
        f"O_ptr[(wsd_b * {s.queries}u + wsd_q0 + wsd_row) * {d}u + wsd_x] = "
        f"f16(wsd_fs[wsd_row * {dp}u + wsd_x] * wsd_inv); }}",
        "}",
        "//",
    ]
    return "\n  ".join(lines)


def flash_attention_kernel(
    batch: int, queries: int, keys: int, depth: int, scale: float, tiles: FlashTiles = FlashTiles()
) -> tvm.tirx.PrimFunc:
    """``O[b] = softmax(Q[b] K[b]^T scale) V[b]`` for fp16 ``Q, O: [batch,
    queries, depth]`` and ``K, V: [batch, keys, depth]``, as one kernel on
    subgroup matrices (the shape must :func:`flash_fits`)."""
    if not flash_fits(queries, keys, depth, tiles):
        raise ValueError(f"the fused tensor-core attention does not take {queries}x{keys}x{depth}")
    s = _Shape(batch, queries, keys, depth, scale, tiles)
    text, sizes, threads = flash_wgsl(s), s.buffer_sizes(), s.threads
    q_shape, kv_shape = (batch, queries, depth), (batch, keys, depth)
    (fk, _), (fs, _), (fa, _) = sizes["wsd_fk"], sizes["wsd_fs"], sizes["wsd_fa"]

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(q: T.handle, k: T.handle, v: T.handle, o: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        # The WGSL text names Q, K, V and O (TVM prints them as Q_ptr, ...).
        Q = T.match_buffer(q, q_shape, "float16")  # noqa: N806
        K = T.match_buffer(k, kv_shape, "float16")  # noqa: N806
        V = T.match_buffer(v, kv_shape, "float16")  # noqa: N806
        O = T.match_buffer(o, q_shape, "float16")  # noqa: N806, E741
        # The WGSL reads blockIdx and threadIdx itself.
        for _bx in T.thread_binding(queries // (ROWS * tiles.subgroups), thread="blockIdx.x"):
            for _by in T.thread_binding(batch, thread="blockIdx.y"):
                for _tx in T.thread_binding(threads, thread="threadIdx.x"):
                    wsd_fk = T.alloc_buffer((fk,), "float16", scope="shared")
                    wsd_fv = T.alloc_buffer((fk,), "float16", scope="shared")
                    wsd_fs = T.alloc_buffer((fs,), "float32", scope="shared")
                    wsd_fp = T.alloc_buffer((fs,), "float16", scope="shared")
                    wsd_fa = T.alloc_buffer((fa,), "float32", scope="shared")
                    T.evaluate(
                        T.call_extern(
                            "int32", text, Q.data, K.data, V.data, O.data, wsd_fk.data,
                            wsd_fv.data, wsd_fs.data, wsd_fp.data, wsd_fa.data,
                        )
                    )  # fmt: skip
                    # TVM binds O writable only where TIR stores to it: a store that
                    # never runs (all(false) is WGSL's, not evaluated by TVM).
                    if T.call_extern("bool", "all", T.bool(False)):
                        O[0, 0, 0] = T.float16(0)

    return kernel
