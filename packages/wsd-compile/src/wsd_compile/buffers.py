"""The GPU buffers a compiled pipeline needs: the largest tensors of each function.

WebGPU caps a storage-buffer binding (``maxStorageBufferBindingSize``: 128 MiB
by default, often 1-4 GiB on request) and a buffer (``maxBufferSize``), so the
largest buffer a model binds decides which devices can run it. Two measures:
the static shapes of every tensor a function computes at graph level (before
operator fusion, so an upper bound: a fused intermediate may never be
materialised, :func:`function_buffers`), and the storage the memory plan of
the lowered module allocates (what the kernels bind, :func:`planned_largest`;
the manifest's ``limits.max_buffer_bytes`` is this or the largest weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax


@dataclass(frozen=True)
class BufferInfo:
    """One tensor: the function computing it, its shape, dtype and size in bytes."""

    function: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    def describe(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        return f"{self.function}: {self.dtype}[{dims}] ({self.nbytes / 2**20:.1f} MiB)"


def _static_tensors(ty: object) -> list[tuple[tuple[int, ...], str]]:
    if isinstance(ty, relax.TupleType):
        return [t for field in ty.fields for t in _static_tensors(field)]
    if isinstance(ty, relax.TensorType) and ty.shape is not None:
        try:
            shape = tuple(int(d) for d in ty.shape.values)
        except (TypeError, AttributeError):
            return []
        return [(shape, str(ty.dtype))]
    return []


def function_buffers(mod: tvm.IRModule) -> list[BufferInfo]:
    """Every tensor bound at graph level in ``mod``'s Relax functions, largest first."""
    found: list[BufferInfo] = []
    for gv in mod.get_global_vars():
        func = mod[gv]
        if not isinstance(func, relax.Function) or not isinstance(func.body, relax.SeqExpr):
            continue
        for block in func.body.blocks:
            for binding in block.bindings:
                for shape, dtype in _static_tensors(binding.var.ty):
                    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                    found.append(BufferInfo(gv.name_hint, shape, dtype, nbytes))
    return sorted(found, key=lambda b: -b.nbytes)


def largest_weight_bytes(weights: dict[str, list[np.ndarray]], *, widen_f16: bool = False) -> int:
    """The largest weight in bytes as uploaded (``widen_f16``: float16 ones as float32)."""
    return max(
        (
            a.nbytes * (2 if widen_f16 and a.dtype == np.float16 else 1)
            for arrays in weights.values()
            for a in arrays
        ),
        default=0,
    )


def _planned_storage(lowered: tvm.IRModule) -> dict[str, list[int]]:
    """The bytes of each storage each Relax function of ``lowered`` allocates."""
    alloc_storage = tvm.ir.Op.get("relax.vm.alloc_storage")
    found: dict[str, list[int]] = {}
    for gv in lowered.get_global_vars():
        func = lowered[gv]
        if not isinstance(func, relax.Function):
            continue
        sizes: list[int] = []

        def visit(expr: relax.Expr, sizes: list[int] = sizes) -> None:
            if isinstance(expr, relax.Call) and expr.op.same_as(alloc_storage):
                shape = expr.args[0]
                if isinstance(shape, relax.ShapeExpr):
                    sizes.append(int(np.prod([int(v) for v in shape.values], dtype=np.int64)))

        relax.analysis.post_order_visit(func.body, visit)
        found[gv.name_hint] = sizes
    return found


def planned_workspace(lowered: tvm.IRModule) -> dict[str, int]:
    """The bytes of the storage each Relax function of ``lowered`` (after the VM
    lowering and static memory planning) allocates for its intermediate tensors:
    what a call adds to the VM's pooled allocator, besides its outputs."""
    return {name: sum(sizes) for name, sizes in _planned_storage(lowered).items()}


def planned_largest(lowered: tvm.IRModule) -> dict[str, int]:
    """The largest storage each Relax function of ``lowered`` allocates, in bytes:
    the largest buffer its kernels bind, besides the weights and its inputs.
    Unlike :func:`function_buffers` this is after operator fusion and memory
    planning, so a tensor that a fused kernel never writes out does not count,
    and one storage that several tensors share counts once, at its size."""
    return {name: max(sizes, default=0) for name, sizes in _planned_storage(lowered).items()}
