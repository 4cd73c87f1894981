"""Weights that stream through the build: read one chunk at a time, never all at once.

A real SDXL UNet holds 10.3 GB of float32 weights. Importing it the plain
way (``from_exported_program`` with ``keep_params_as_input``) makes a copy of
every weight (the safetensors data is not 64-byte aligned, so DLPack refuses
to share it), and running the lifted ``<name>_transform_params`` in one call
keeps every input alive until the call returns: the whole UNet in float32
next to its float16 results. This module does both steps in bounded memory:

1. :func:`import_graph` imports the graph alone; the weights stay the torch
   tensors of the ``ExportedProgram`` (for a model loaded from safetensors,
   file-backed pages that cost no memory until read).
2. :func:`transform_weights` splits the transform by its outputs into chunks
   of about :data:`CHUNK_BYTES`, and runs each chunk as its own function
   (``LazyTransformParams``): a chunk reads exactly the weights it needs,
   copies each into aligned memory, gives the file's pages back to the page
   cache (``MADV_PAGEOUT``), and frees its inputs when it returns.

Peak memory is then the transformed weights plus about one chunk, instead of
the raw and transformed weights together. The results are the same arrays, to
the bit, as running the whole transform in one call.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import mmap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tvm
import tvm.relax.op.vm  # LazyTransformParams emits relax.op.vm.kill_object
from tvm import relax
from tvm.relax.frontend.torch.exported_program_translator import ExportedProgramImporter

CHUNK_BYTES = 256 << 20
"""About how many bytes of transformed weights one chunk produces."""

_GET = "wsd.weight_stream.get"
_SET = "wsd.weight_stream.set"
_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)
_PAGE = mmap.PAGESIZE


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library (for madvise and malloc_trim), or None where it is not found."""
    name = ctypes.util.find_library("c")
    return None if name is None else ctypes.CDLL(name, use_errno=True)


class _GraphOnlyImporter(ExportedProgramImporter):  # type: ignore[misc]
    """The stock importer, minus its copy of the weights (``skip``: their ids)."""

    def __init__(self, skip: set[int]) -> None:
        super().__init__()
        self._skip = skip

    def _convert_pytorch_tensor_to_tvm(self, tensor_value: torch.Tensor) -> Any:
        if id(tensor_value) in self._skip:
            return tvm.runtime.empty((0,), "float32")  # detached and dropped by the caller
        return ExportedProgramImporter._convert_pytorch_tensor_to_tvm(tensor_value)


def import_graph(program: Any) -> tuple[relax.Function, list[torch.Tensor], list[str]]:
    """``program`` (an ``ExportedProgram``) as a Relax function whose weights
    are trailing parameters, those weights (its torch tensors, uncopied), in
    the order of the parameters, and their names in the program.

    What ``from_exported_program(program, keep_params_as_input=True)`` makes,
    without converting the weights (buffers and constants are bound as usual).
    """
    decomposed = program.run_decompositions()
    named = list(decomposed.named_parameters())
    weights = [t for _, t in named]
    importer = _GraphOnlyImporter({id(t) for t in weights})
    mod = importer.from_exported_program(decomposed, True, False, False, None)
    mod, _ = relax.frontend.detach_params(mod)
    func = mod["main"]
    n_weights = len(func.params) - int(func.attrs["num_input"])
    if n_weights != len(weights):
        raise AssertionError(f"imported {n_weights} weight parameters for {len(weights)} weights")
    return func, weights, [n for n, _ in named]


@dataclass
class _Pager:
    """Gives file-backed pages back to the page cache once a weight was read.

    A model loaded from safetensors maps the files; every page read stays in
    the process's resident set (and its peak) until the mapping goes.
    ``MADV_PAGEOUT`` drops clean file pages (they are read again if needed)
    and leaves anything else alone, so it never changes a value.
    """

    ranges: list[tuple[int, int]] = field(default_factory=list)
    madvise: Callable[..., int] | None = None

    @classmethod
    def of_process(cls) -> _Pager:
        ranges = []
        try:
            with Path("/proc/self/maps").open() as maps:
                for line in maps:
                    parts = line.split()
                    # address perms offset dev inode path: file mappings have an inode.
                    if len(parts) >= 6 and parts[4] != "0":
                        start, end = (int(a, 16) for a in parts[0].split("-"))
                        ranges.append((start, end))
        except OSError:
            return cls()
        libc = _libc()
        if libc is None:
            return cls()
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        return cls(sorted(ranges), libc.madvise)

    def release(self, tensor: torch.Tensor) -> None:
        if self.madvise is None or not tensor.is_contiguous() or tensor.device.type != "cpu":
            return
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        k = bisect.bisect_right(self.ranges, (start, 1 << 64)) - 1
        if k < 0 or not self.ranges[k][0] <= start < self.ranges[k][1]:
            return  # not in a file mapping
        lo, hi = self.ranges[k]
        a = max(lo, start - start % _PAGE)
        b = min(hi, -(-end // _PAGE) * _PAGE)
        if b > a:
            self.madvise(a, b - a, _PAGEOUT)


def _bytes(ty: Any) -> int:
    shape = [int(s) for s in ty.shape.values]
    return int(np.prod(shape, dtype=np.int64)) * int(tvm.DataType(ty.dtype).bits) // 8


def _output_binding(func: relax.Function) -> relax.VarBinding:
    out = func.body.body
    for block in func.body.blocks:
        for binding in block.bindings:
            if binding.var.same_as(out):
                if not isinstance(binding.value, relax.Tuple):
                    break
                return binding
    raise AssertionError("the weight transform does not end in a tuple of its results")


def _chunks(fields: Sequence[relax.Expr], chunk_bytes: int) -> list[range]:
    chunks: list[range] = []
    start, size = 0, 0
    for i, expr in enumerate(fields):
        nbytes = _bytes(expr.ty)
        if i > start and size + nbytes > chunk_bytes:
            chunks.append(range(start, i))
            start, size = i, 0
        size += nbytes
    if start < len(fields):
        chunks.append(range(start, len(fields)))
    return chunks


def _chunk_function(func: relax.Function, out: relax.VarBinding, indices: range) -> relax.Function:
    fields = list(out.value.fields)[indices.start : indices.stop]
    result = relax.Var("chunk", relax.TupleType([f.ty for f in fields]))
    body = relax.SeqExpr(
        [*func.body.blocks, relax.BindingBlock([relax.VarBinding(result, relax.Tuple(fields))])],
        result,
    )
    chunk = relax.Function(func.params, body, result.ty, func.is_pure, func.attrs)
    pruned: relax.Function = relax.analysis.remove_all_unused(relax.BlockBuilder().normalize(chunk))
    return pruned


def transform_weights(
    transform: relax.Function,
    weights: Sequence[torch.Tensor],
    *,
    chunk_bytes: int = CHUNK_BYTES,
    on_chunk: Callable[[int, list[int]], None] | None = None,
) -> list[np.ndarray]:
    """Run ``transform`` (a lifted ``*_transform_params`` taking the weights as
    one tuple) on ``weights``, chunk by chunk; its results as numpy arrays.

    ``on_chunk(k, read)``, if given, hears which weights chunk ``k`` read.
    """
    flat = relax.transform.ToNonDataflow()(tvm.IRModule({"main": transform}))["main"]
    out = _output_binding(flat)
    chunks = _chunks(list(out.value.fields), chunk_bytes)
    names = [f"c{k}_transform_params" for k in range(len(chunks))]
    mod = tvm.IRModule(
        {
            n: _chunk_function(flat, out, c).with_attr("global_symbol", n)
            for n, c in zip(names, chunks, strict=True)
        }
    )
    for step in (
        relax.transform.RemovePurityChecking(),
        relax.transform.LazyTransformParams(fget_item=_GET, fset_item=_SET),
    ):
        mod = step(mod)
    pager = _Pager.of_process()
    results: list[np.ndarray | None] = [None] * len(out.value.fields)
    state = {"offset": 0}
    read: list[int] = []

    def get(i: int) -> Any:
        source = weights[i]
        copy = source.detach().clone(memory_format=torch.contiguous_format)
        pager.release(source)
        read.append(int(i))
        return tvm.runtime.from_dlpack(copy)

    def put(i: int, value: Any) -> None:
        # A copy: the planned storage behind ``value`` is reused by later bindings.
        results[state["offset"] + int(i)] = value.numpy()

    tvm.register_global_func(_GET, get, override=True)
    tvm.register_global_func(_SET, put, override=True)
    vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
    for k, (name, chunk) in enumerate(zip(names, chunks, strict=True)):
        state["offset"] = chunk.start
        read.clear()
        vm[name]()
        if on_chunk is not None:
            on_chunk(k, list(read))
    del vm
    release_free_memory()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise AssertionError(f"the weight transform set no value for results {missing[:5]}")
    return [r for r in results if r is not None]


def release_free_memory() -> None:
    """Hand memory the transform freed back to the system (TVM's pool, malloc's heap)."""
    tvm.get_global_func("vm.builtin.memory_manager.clear")()
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
