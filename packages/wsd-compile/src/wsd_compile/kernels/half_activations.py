"""fp16 storage for the activations an fp16 model keeps in fp32 between kernels.

``ToMixedPrecision(out_dtype="float16")`` runs convolutions and matmuls in
fp16 but leaves the arithmetic after them in fp32: a convolution's result is
cast to fp32 for its bias, and the residual stream, the nearest-neighbour
upsampling and the group norms' inputs are fp32 tensors. Each is written by
one kernel and read back by others (the norm's statistics, the next im2col,
the residual sum), at 4 bytes an element where PyTorch's fp16 moves 2: at
SD 1.5 512 the VAE decoder's activations are 128 MiB each at full size.

:func:`half_activations_pass` stores them in fp16, in the functions it is
given: each such value (element-wise arithmetic or a resize in fp32, read
only by element-wise arithmetic, resizes and group norms) is
written as ``astype(value, float16)`` by the kernel that computes it and read
through ``astype(stored, float32)``. Arithmetic stays fp32 inside every
kernel; only the stored value is rounded to fp16, as PyTorch's fp16 rounds
every tensor. A group norm of such a value takes its statistics from the
stored fp16 tensor (:mod:`.group_norm` looks through the cast).

For the reads to fuse into their readers, each reader needs a cast of its
own: one cast read by several kernels would fuse into the writer, which
would then write fp32 again. :func:`split_upcasts_pass`, run after the
rewrites that merge common subexpressions and before fusion, gives every
reader of a shared ``astype(fp16, float32)`` its own copy.
"""

from __future__ import annotations

from collections.abc import Iterable

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .function_pass import function_pass
from .relax_calls import op_name, tensor_dtype

_F16, _F32 = "float16", "float32"

#: The functions whose activations builds store in fp16 (``KernelOptions.half_activations``).
HALF_ACTIVATIONS = ("vae_decode", "vae_decode_tile")

#: fp32 values these make are stored in fp16 (element-wise arithmetic, resizes).
_WRITERS = frozenset(
    f"relax.{name}" for name in ("add", "subtract", "multiply", "divide", "image.resize2d")
)
#: ... where only these read them: they fuse a cast before them into their kernel
#: (the group norm reads the fp16 value itself for its statistics).
_READERS = _WRITERS | frozenset(
    f"relax.{name}" for name in ("astype", "nn.group_norm", "sigmoid", "nn.silu")
)


def _is_tensor(expr: relax.Expr, dtype: str) -> bool:
    return tensor_dtype(expr) == dtype and expr.ty.ndim >= 3


def _is_half_model(func: relax.Function) -> bool:
    """Whether ``func`` computes anything in fp16 (an fp32 function is left alone)."""
    return any(
        _is_tensor(binding.var, _F16) for block in func.body.blocks for binding in block.bindings
    )


def _readers(func: relax.Function) -> dict[relax.Var, list[str]]:
    """For each variable of ``func``'s dataflow blocks, what reads it: an
    operator's name for a call's argument, ``""`` for anything else (a
    tuple, the block's output, a call of a function or kernel)."""
    found: dict[relax.Var, list[str]] = {}

    def note(expr: relax.Expr, reader: str) -> None:
        if isinstance(expr, relax.Var):
            found.setdefault(expr, []).append(reader)
        elif isinstance(expr, relax.Tuple):
            for field in expr.fields:
                note(field, "")

    body = func.body
    for block in body.blocks:
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call):
                for arg in value.args:
                    note(arg, op_name(value))
            else:
                note(value, "")
    note(body.body, "")
    return found


def _stored_apart(readers: list[str]) -> bool:
    """Whether a value these read is written to memory by its kernel (read by
    several, or by a group norm's statistics) and each of them takes a cast."""
    kept = len(readers) > 1 or "relax.nn.group_norm" in readers
    return kept and all(r in _READERS for r in readers)


def _narrowed(func: relax.Function) -> set[relax.Var]:
    """The variables of ``func`` to store in fp16 (see the module's docstring)."""
    if not _is_half_model(func):
        return set()
    readers = _readers(func)
    chosen: set[relax.Var] = set()
    for block in func.body.blocks:
        if not isinstance(block, relax.DataflowBlock):
            continue
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if (
                isinstance(var, relax.DataflowVar)
                and isinstance(value, relax.Call)
                and op_name(value) in _WRITERS
                and _is_tensor(var, _F32)
                and _stored_apart(readers.get(var, []))
            ):
                chosen.add(var)
    return chosen


@mutator
class _Narrower(PyExprMutator):  # type: ignore[misc]
    """Bind each chosen value as ``astype(astype(value, f16), f32)``."""

    def __init__(self, mod: tvm.IRModule, chosen: set[relax.Var]) -> None:
        super().__init__(mod)
        self.chosen = chosen

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var not in self.chosen:
            super().visit_var_binding_(binding)
            return
        wide = self.builder_.emit(self.visit_expr(binding.value))
        stored = self.builder_.emit(relax.op.astype(wide, _F16))
        read = self.builder_.emit(relax.op.astype(stored, _F32))
        self.set_var_remap(binding.var, read)


#: Calls that take a tensor through a kernel of their own: a cast before them is a kernel too.
_OPAQUE = frozenset(f"relax.{name}" for name in ("call_tir", "call_tir_inplace", "call_dps_packed"))


@mutator
class _Splitter(PyExprMutator):  # type: ignore[misc]
    """Each operator reading a shared ``astype(fp16, float32)`` reads a copy of its own."""

    def __init__(self, mod: tvm.IRModule, shared: dict[relax.Var, relax.Var]) -> None:
        super().__init__(mod)
        self.shared = shared

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        if isinstance(value, relax.Call) and op_name(value) not in _OPAQUE | {"", "relax.astype"}:
            args = [self._own(arg) for arg in value.args]
            if any(new is not old for new, old in zip(args, value.args, strict=True)):
                value = relax.Call(value.op, args, value.attrs, value.ty_args)
                binding = relax.VarBinding(binding.var, value)
        super().visit_var_binding_(binding)

    def _own(self, arg: relax.Expr) -> relax.Expr:
        if not isinstance(arg, relax.Var) or arg not in self.shared:
            return arg
        return self.builder_.emit(relax.op.astype(self.visit_expr(self.shared[arg]), _F32))


def _shared_upcasts(func: relax.Function) -> dict[relax.Var, relax.Var]:
    """``func``'s ``astype(fp16, float32)`` values that several calls read, each
    with the fp16 value it casts."""
    readers = _readers(func)
    shared: dict[relax.Var, relax.Var] = {}
    for block in func.body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if (
                isinstance(var, relax.DataflowVar)
                and isinstance(value, relax.Call)
                and op_name(value) == "relax.astype"
                and isinstance(value.args[0], relax.Var)
                and _is_tensor(var, _F32)
                and _is_tensor(value.args[0], _F16)
                and len(readers.get(var, [])) > 1
                and "" not in readers[var]
            ):
                shared[var] = value.args[0]
    return shared


def half_activations_pass(functions: Iterable[str]) -> tvm.transform.Pass:
    """Store the fp32 activations of the Relax functions named ``functions``
    in fp16 (see the module's docstring); run before the group-norm rewrite."""
    return function_pass("wsd.HalfActivations", _Narrower, _narrowed, functions)


def split_upcasts_pass(functions: Iterable[str]) -> tvm.transform.Pass:
    """Give each reader of a shared fp16-to-fp32 cast in the functions named
    ``functions`` a cast of its own; run after the last merge of common
    subexpressions, before fusion."""
    return function_pass("wsd.SplitUpcasts", _Splitter, _shared_upcasts, functions)
