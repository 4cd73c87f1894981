"""A slice of rows taken before the element-wise arithmetic that produced it.

A convolution computed in ranges of output rows (:func:`.subgroup_matrix.conv_in_rows`)
reads a slice of its input per range. Where that input is the end of an
element-wise chain (the group norm's normalisation, its SiLU, a cast), the
chain has one consumer per range, so fusion cannot put it into any of them:
it runs as kernels of its own that write the whole activation, which every
range's im2col kernel then reads back (at SD 1.5 512, 3.1 ms of the VAE
decode's 38 ms on an H100). :func:`sink_row_slices` slices the chain's inputs
instead and repeats its arithmetic on the slice, so that each range's chain
fuses into that range's im2col kernel and the whole activation is never
written. Only the halo rows are computed twice.

A value something else reads whole (x, which the group norm's statistics
read; a residual sum) is where a slice stops: sliced there, it is read once,
where going further up would read each of the tensors it was made from.
"""

from __future__ import annotations

from typing import NamedTuple

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .function_pass import function_pass
from .relax_calls import op_name
from .shapes import static_shape

#: Operators that compute each element of their result from the elements at
#: the same index of their operands (broadcast): a slice of their result is
#: the operator on the operands' slices.
ELEMENTWISE = frozenset(
    f"relax.{name}"
    for name in (
        "add",
        "astype",
        "divide",
        "exp",
        "multiply",
        "negative",
        "nn.gelu",
        "nn.silu",
        "rsqrt",
        "sigmoid",
        "sqrt",
        "subtract",
        "tanh",
    )
)


def sink_row_slices() -> tvm.transform.Pass:
    """Every slice along one axis of a value that only slices (and the
    element-wise arithmetic that ends in slices) read, taken before that
    arithmetic: the arithmetic on its operands' slices, down to values read
    whole elsewhere (see the module's docstring). Run dead-code elimination
    after it: the whole values it no longer reads stay until then."""

    # Every function: the sinker reads the function it rewrites.
    return function_pass(
        "wsd.SinkRowSlices", lambda mod, found: _Sinker(mod, found[0]), lambda f: [f]
    )


def _row_slice(value: relax.Expr) -> tuple[relax.Var, int, int, int] | None:
    """(tensor, axis, first, last) of a unit-stride slice along one axis."""
    if not isinstance(value, relax.Call) or value.op != _STRIDED_SLICE:
        return None
    data, axes, begin, end, *strides = value.args
    if not isinstance(data, relax.Var) or len(axes) != 1:
        return None
    if strides and any(int(s.value) != 1 for s in strides[0]):
        return None
    return data, int(axes[0].value), int(begin[0].value), int(end[0].value)


def _elementwise(value: relax.Expr) -> bool:
    return op_name(value) in ELEMENTWISE


_STRIDED_SLICE = tvm.ir.Op.get("relax.strided_slice")


class _Cut(NamedTuple):
    """Rows ``first`` to ``last`` (exclusive) along ``axis``."""

    axis: int
    first: int
    last: int


#: The slices made in one sinking, by tensor and axis.
_Done = dict[tuple[relax.Var, int], relax.Expr]


@mutator
class _Sinker(PyExprMutator):  # type: ignore[misc]
    def __init__(self, mod: tvm.IRModule, func: relax.Function) -> None:
        super().__init__(mod)
        bindings = [b for block in func.body.blocks for b in block.bindings]
        #: What each variable of ``func`` is bound to (as ``func`` has it).
        self.bound: dict[relax.Var, relax.Expr] = {
            b.var: b.value for b in bindings if isinstance(b, relax.VarBinding)
        }
        readers: dict[relax.Var, list[relax.Var | None]] = {}
        for b in bindings:
            for used in relax.analysis.free_vars(b.value):
                readers.setdefault(used, []).append(b.var)
        for used in relax.analysis.free_vars(func.body.body):
            readers.setdefault(used, []).append(None)  # returned: read whole
        #: Variables only slices read (directly, or through element-wise
        #: arithmetic only slices read).
        self.slice_only: set[relax.Var] = set()
        for b in reversed(bindings):
            found = readers.get(b.var, [])
            if found and all(self._slices(reader, b.var) for reader in found):
                self.slice_only.add(b.var)

    def _slices(self, reader: relax.Var | None, var: relax.Var) -> bool:
        if reader is None or reader not in self.bound:
            return False
        value = self.bound[reader]
        sliced = _row_slice(value)
        if sliced is not None:
            return bool(sliced[0].same_as(var))
        return _elementwise(value) and reader in self.slice_only

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        sliced = _row_slice(call)
        if sliced is None or sliced[0] not in self.slice_only:
            return super().visit_call_(call)
        value, axis, first, last = sliced
        made = self._sliced_call(value, _Cut(axis, first, last), {})
        return super().visit_call_(call) if made is None else made

    def _sliced_call(self, value: relax.Var, cut: _Cut, done: _Done) -> relax.Call | None:
        """``value``'s producer on its operands' slices (not yet bound); None
        where it is not element-wise or an operand is neither of the
        slice's extent nor broadcast along it."""
        producer, shape = self.bound.get(value), static_shape(value)
        if shape is None or producer is None or not _elementwise(producer):
            return None
        args = []
        for arg in producer.args:
            arg_shape = static_shape(arg)
            at = cut.axis - (len(shape) - len(arg_shape)) if arg_shape is not None else -1
            if arg_shape is not None and (at < 0 or arg_shape[at] == 1):
                args.append(self.visit_expr(arg))  # broadcast: the same for every row
            elif (
                arg_shape is not None
                and arg_shape[at] == shape[cut.axis]
                and isinstance(arg, relax.Var)
            ):
                args.append(self._sliced(arg, cut._replace(axis=at), done))
            else:
                return None
        return relax.Call(producer.op, args, producer.attrs, producer.ty_args)

    def _sliced(self, value: relax.Var, cut: _Cut, done: _Done) -> relax.Expr:
        """``value``'s slice, bound: made from its operands' slices where only
        slices read it, else sliced itself (once a slice: ``x * sigmoid(x)``
        reads x twice)."""
        if (value, cut.axis) not in done:
            made = self._sliced_call(value, cut, done) if value in self.slice_only else None
            if made is None:
                whole = self.visit_expr(value)
                made = relax.op.strided_slice(whole, [cut.axis], [cut.first], [cut.last])
            done[(value, cut.axis)] = self.builder_.emit(made)
        return done[(value, cut.axis)]
