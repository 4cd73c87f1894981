"""Tensor cores through WebGPU: fp16 matmuls on subgroup matrices.

Dawn's ``chromium-experimental-subgroup-matrix`` gives WGSL 16x16x16 matrix
products with f32 sums (``subgroup_matrix_left/right/result``,
``subgroupMatrixLoad``, ``subgroupMatrixMultiplyAccumulate``,
``subgroupMatrixStore``); TVM's WebGPU code generator has no such types. So
the kernel here is TIR whose matrix part is WGSL text, emitted as the name of
an ``call_extern`` statement that ends in a line comment (the comment swallows
the argument list the generator appends), and whose output part is plain TIR:

- one workgroup is one subgroup (32 invocations) and owns a ``(16 tm) x (16 tn)``
  block of the result: ``tm x tn`` accumulators, loaded A and B tiles straight
  from storage, 16 columns of K at a time;
- the accumulators go to workgroup memory, and the 32 invocations write them
  to the f32 output with ordinary (coalesced) stores, which TIR sees, so the
  output is bound writable and the ``astype`` to fp16 and the epilogue that
  follow fuse as usual.

The page adds the ``enable chromium_experimental_subgroup_matrix;`` directive
the generator cannot print (``js/tvm_session.js``), and runs a library built
with these kernels only on a device with the feature, an f16 -> f32 16x16x16
configuration and subgroups of at most 32 (``SUBGROUP_MATRIX_REQUIRES``).

``subgroup_matrix_pass`` rewrites the fp16 matmuls that sum in fp32
(``matmul(a: f16, w: f16 [K, N], out_dtype=f32)``, what ``accumulate_fp32``
leaves) whose rows, columns and K are multiples of 16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator
from tvm.script import tirx as T

from .shapes import static_shape

#: What a device needs for the kernels (WebGPU features, and two tokens the
#: page derives from ``adapter.info``: the matrix configuration and the
#: largest subgroup size; ``js/webgpu_device.js``).
SUBGROUP_MATRIX_REQUIRES = (
    "shader-f16",
    "subgroups",
    "chromium-experimental-subgroup-matrix",
    "subgroup-matrix-f16-f32-16x16x16",
    "subgroup-size-max-32",
)
#: The tile of one subgroup matrix, and the invocations of a workgroup (one subgroup).
SIDE = 16
SUBGROUP = 32
#: The names the WGSL text refers to: TVM prints a buffer ``X`` of the
#: signature as ``X_ptr`` and a workgroup buffer by its name.
_A, _B, _TILE = "A_ptr", "B_ptr", "wsd_tile"


@dataclass(frozen=True)
class Gemm:
    """``C[m, n] = sum_k A[m, k] B[k, n]`` in blocks of ``(16 tm) x (16 tn)``."""

    m: int
    n: int
    k: int
    tm: int
    tn: int

    @property
    def rows(self) -> int:
        return SIDE * self.tm

    @property
    def cols(self) -> int:
        return SIDE * self.tn


def gemm_blocks(m: int, n: int, k: int) -> Gemm | None:
    """The blocking of an ``m x k`` by ``k x n`` product, or None if it does not tile
    into 16x16x16 matrices. Blocks of 32 x 64 measured fastest on the H200 for the
    UNet's shapes (``node/probe_subgroup_matrix.mjs``)."""
    if k % SIDE or m % SIDE or n % SIDE:
        return None
    tm = 2 if m % (2 * SIDE) == 0 else 1
    tn = next(t for t in (4, 2, 1) if n % (t * SIDE) == 0)
    return Gemm(m, n, k, tm, tn)


def _wgsl(g: Gemm) -> str:
    """The matrix part of the kernel, as WGSL statements ending in a line comment."""
    pairs = [(i, j) for i in range(g.tm) for j in range(g.tn)]
    left = "subgroup_matrix_left<f16, 16, 16>"
    right = "subgroup_matrix_right<f16, 16, 16>"
    lines = [
        # The column block as TVM computes blockIdx.x (its grid packing), the row block.
        f"let wsd_n0 = (blockIdx.z * gridDim.x + blockIdx.x) * {g.cols}u;",
        f"let wsd_m0 = blockIdx.y * {g.rows}u;",
        *(f"var wsd_acc_{i}_{j} = subgroup_matrix_result<f32, 16, 16>();" for i, j in pairs),
        f"for (var wsd_k = 0u; wsd_k < {g.k}u; wsd_k += 16u) {{",
        *(
            f"  let wsd_a_{i} = subgroupMatrixLoad<{left}>(&{_A}, "
            f"(wsd_m0 + {SIDE * i}u) * {g.k}u + wsd_k, false, {g.k}u);"
            for i in range(g.tm)
        ),
        *(
            f"  let wsd_b_{j} = subgroupMatrixLoad<{right}>(&{_B}, "
            f"wsd_k * {g.n}u + wsd_n0 + {SIDE * j}u, false, {g.n}u);"
            for j in range(g.tn)
        ),
        *(
            f"  wsd_acc_{i}_{j} = subgroupMatrixMultiplyAccumulate(wsd_a_{i}, wsd_b_{j}, "
            f"wsd_acc_{i}_{j});"
            for i, j in pairs
        ),
        "}",
        *(
            f"subgroupMatrixStore(&{_TILE}, {SIDE * i * g.cols + SIDE * j}u, wsd_acc_{i}_{j}, "
            f"false, {g.cols}u);"
            for i, j in pairs
        ),
        "workgroupBarrier();",
        "//",
    ]
    return "\n  ".join(lines)


def matmul_kernel(
    g: Gemm, a_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tvm.tirx.PrimFunc:
    """The kernel for ``g``: A of ``a_shape`` (rows are its leading dimensions
    flattened), B ``[k, n]``, the f32 result of ``out_shape``."""
    text = _wgsl(g)
    rows, cols, tile = g.rows, g.cols, g.rows * g.cols
    per_thread = tile // SUBGROUP

    @T.prim_func(private=True)  # type: ignore[untyped-decorator]
    def kernel(a: T.handle, b: T.handle, c: T.handle) -> None:
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True, "op_pattern": 8})
        # The WGSL text names A and B (TVM prints them as A_ptr, B_ptr).
        A = T.match_buffer(a, a_shape, "float16")  # noqa: N806
        B = T.match_buffer(b, (g.k, g.n), "float16")  # noqa: N806
        C = T.match_buffer(c, out_shape, "float32")  # noqa: N806
        flat = T.decl_buffer((g.m, g.n), "float32", data=C.data)
        for bx in T.thread_binding(g.n // cols, thread="blockIdx.x"):
            for by in T.thread_binding(g.m // rows, thread="blockIdx.y"):
                for tx in T.thread_binding(SUBGROUP, thread="threadIdx.x"):
                    wsd_tile = T.alloc_buffer((tile,), "float32", scope="shared")
                    T.evaluate(T.call_extern("int32", text, A.data, B.data, wsd_tile.data))
                    for i in T.unroll(per_thread):
                        flat[
                            by * rows + (i * SUBGROUP + tx) // cols,
                            bx * cols + (i * SUBGROUP + tx) % cols,
                        ] = wsd_tile[i * SUBGROUP + tx]

    return kernel


@mutator
class _Rewriter(PyExprMutator):  # type: ignore[misc]
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.matmul = tvm.ir.Op.get("relax.matmul")
        self.kernels: dict[tuple[Any, ...], relax.GlobalVar] = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op != self.matmul:
            return call
        a, w = call.args
        a_shape, w_shape, out_shape = static_shape(a), static_shape(w), static_shape(call)
        dtypes = (str(a.ty.dtype), str(w.ty.dtype), str(call.ty.dtype))
        if dtypes != ("float16", "float16", "float32") or not a_shape or not out_shape:
            return call
        if w_shape is None or len(w_shape) != 2 or len(a_shape) < 2:
            return call
        k, n = w_shape
        m = math.prod(a_shape[:-1])
        g = gemm_blocks(m, n, k)
        if g is None or a_shape[-1] != k:
            return call
        key = (tuple(a_shape), n, tuple(out_shape))
        if key not in self.kernels:
            kernel = matmul_kernel(g, tuple(a_shape), tuple(out_shape))
            self.kernels[key] = self.builder_.add_func(kernel, "subgroup_matrix_matmul")
        return relax.call_tir(self.kernels[key], [a, w], relax.TensorType(out_shape, "float32"))


@tvm.transform.module_pass(opt_level=0, name="wsd.SubgroupMatrixMatmul")  # type: ignore[untyped-decorator]
def subgroup_matrix_pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every fp16 matmul summing in fp32 whose shapes tile into 16x16x16 matrices,
    as a :func:`matmul_kernel` call (run after ``accumulate_fp32``)."""
    rewriter = _Rewriter(mod)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    result: tvm.IRModule = rewriter.builder_.get()
    return result
