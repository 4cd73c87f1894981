"""Products that read one activation, made one product on tensor cores.

An attention's query, key and value projections all read the same
activation: three products ``x W_q``, ``x W_k`` and ``x W_v`` of ``M x K``
by ``K x N``. On the ``subgroup-matrix`` path each is a kernel of its own,
and at SD 1.5's shapes (``N`` of 320 to 1280) each has too few blocks to
keep the tensor cores busy. :func:`combine_products_pass` makes them one
product of ``x`` by the weights side by side, ``concat([W_q, W_k, W_v],
axis=1)`` (joined on the GPU at every call: the weights stay separate
tensors, so LoRA merges and the weight shards do not change), and gives each
projection its columns of the result (a ``strided_slice``, which fusion puts
into the kernel that reads it).

It takes the products in a dataflow block that read one variable with at
least ``min_rows`` rows (so not the few-row time-embedding projections,
which :class:`.FewRowsMatmul` runs as matrix-vector products), by a weight
(a parameter of the function, or an element of its tuple of parameters)
of the same depth, in one dtype, at most :data:`MAX_COMBINED` of them at a
time.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .function_pass import function_pass
from .relax_calls import op_name
from .shapes import static_shape

#: Products whose shared input has fewer rows than this are left alone (the
#: time embedding's 2; the text's 154 rows, 77 tokens twice, are combined).
COMBINE_MIN_ROWS = 64

#: At most this many products are made one: the kernel joining their weights
#: binds one storage buffer for each and one for the result, within WebGPU's
#: default limit of 8 storage buffers per shader stage (every cross-attention
#: of a UNet reads the text: its 32 products in SD 1.5 become 8).
MAX_COMBINED = 4

#: One product: the variable it binds, its weight and the weight's columns.
_Member = tuple[relax.Var, relax.Expr, int]


def _weight(
    expr: relax.Expr, values: dict[relax.Var, relax.Expr], params: set[relax.Var]
) -> relax.Expr | None:
    """What ``expr`` is, if it is a weight: a parameter of the function or an
    element of a tuple parameter (defined everywhere in it, so the combined
    product can read it where the first product was), 2-D with a static
    shape; else None."""
    value = values.get(expr, expr) if isinstance(expr, relax.Var) else expr
    if isinstance(value, relax.TupleGetItem):
        if value.tuple_value not in params:
            return None
    elif value not in params:
        return None
    shape = static_shape(expr)
    if shape is None or len(shape) != 2:
        return None
    return value


def _rows(expr: relax.Expr) -> int:
    """The rows of a static-shaped activation ``[..., K]``; 0 if not static."""
    shape = static_shape(expr)
    if shape is None or len(shape) < 2:
        return 0
    return math.prod(shape[:-1])


def _groups(func: relax.Function, min_rows: int) -> list[list[_Member]]:
    """``func``'s products to combine, in groups of two or more that read
    one activation (see the module's docstring)."""
    values = {b.var: b.value for block in func.body.blocks for b in block.bindings}
    params = set(func.params)
    groups: list[list[_Member]] = []
    for block in func.body.blocks:
        if not isinstance(block, relax.DataflowBlock):
            continue
        found: dict[tuple[relax.Var, str, str, int], list[_Member]] = {}
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if not (
                isinstance(var, relax.DataflowVar)
                and op_name(value) == "relax.matmul"
                and isinstance(value.args[0], relax.Var)
                and _rows(value.args[0]) >= min_rows
            ):
                continue
            x, w = value.args
            weight = _weight(w, values, params)
            if weight is None:
                continue
            depth, columns = (int(d) for d in w.ty.shape.values)
            key = (x, str(w.ty.dtype), str(value.attrs.out_dtype), depth)
            found.setdefault(key, []).append((var, weight, columns))
        for members in found.values():
            chunks = (members[i : i + MAX_COMBINED] for i in range(0, len(members), MAX_COMBINED))
            groups.extend(chunk for chunk in chunks if len(chunk) > 1)
    return groups


@mutator
class _Combiner(PyExprMutator):  # type: ignore[misc]
    """Each group's first product becomes the combined one and every member
    its columns of it; the other members' bindings go."""

    def __init__(self, mod: tvm.IRModule, groups: list[list[_Member]]) -> None:
        super().__init__(mod)
        self.first = {members[0][0]: members for members in groups}
        self.rest = {var for members in groups for var, _, _ in members[1:]}

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        if binding.var in self.rest:
            return
        members = self.first.get(binding.var)
        if members is None:
            super().visit_var_binding_(binding)
            return
        value = binding.value
        x = self.visit_expr(value.args[0])
        weights = []
        for _, weight, _ in members:
            seen = self.visit_expr(weight)
            weights.append(seen if isinstance(seen, relax.Var) else self.builder_.emit(seen))
        joined = self.builder_.emit(relax.op.concat(weights, axis=1))
        product = self.builder_.emit(relax.op.matmul(x, joined, out_dtype=value.attrs.out_dtype))
        axis = int(binding.var.ty.ndim) - 1
        start = 0
        for var, _, columns in members:
            part = relax.op.strided_slice(product, [axis], [start], [start + columns])
            self.set_var_remap(var, self.builder_.emit(part))
            start += columns


def combine_products_pass(min_rows: int = COMBINE_MIN_ROWS) -> tvm.transform.Pass:
    """Combine the products that read one activation (at least ``min_rows``
    rows) by weights into one product per activation, in every Relax
    function of the module (see the module's docstring)."""
    return function_pass("wsd.CombineProducts", _Combiner, lambda func: _groups(func, min_rows))
