"""What a build binds: graph-level tensors (an upper bound) against the storage
the lowered module's memory plan allocates."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from wsd_compile.buffers import (
    function_buffers,
    largest_weight_bytes,
    planned_largest,
    planned_workspace,
)
from wsd_compile.kernels import DEFAULT_KERNELS, webgpu_pipeline
from wsd_compile.webgpu import webgpu_target


def _module() -> tvm.IRModule:
    """``astype(matmul(relu(a), w, out_dtype=f32), f16)``: an fp32 sum that the
    cast fuses into, and an intermediate (the relu) that is written out."""
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((2, 64, 64), "float16"))
    w = relax.Var("w", relax.TensorType((64, 128), "float16"))
    with bb.function("main", [a, w]):
        with bb.dataflow():
            r = bb.emit(relax.op.nn.relu(a))
            c = bb.emit(relax.op.matmul(r, w, out_dtype="float32"))
            d = bb.emit_output(relax.op.astype(c, "float16"))
        bb.emit_func_output(d)
    return bb.get()


def test_a_fused_fp32_sum_is_not_bound_but_counts_at_graph_level() -> None:
    mod = _module()
    graph = function_buffers(mod)
    assert (graph[0].shape, graph[0].dtype, graph[0].nbytes) == ((2, 64, 128), "float32", 65536)
    lowered = webgpu_pipeline(webgpu_target(), DEFAULT_KERNELS)(mod)
    # Bound: the f16 output (32 KiB) and the relu's f16 result (16 KiB), not the f32 sum.
    assert planned_largest(lowered)["main"] == 2 * 64 * 128 * 2
    assert planned_workspace(lowered)["main"] == 2 * 64 * 128 * 2 + 2 * 64 * 64 * 2


def test_the_largest_weight_counts_widened_where_the_path_widens() -> None:
    weights = {"unet": [np.zeros((4, 8), np.float16), np.zeros(10, np.float32)]}
    assert largest_weight_bytes(weights) == 64
    assert largest_weight_bytes(weights, widen_f16=True) == 128
    assert largest_weight_bytes({}) == 0
