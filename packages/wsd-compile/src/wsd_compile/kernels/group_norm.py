"""Group norm as two-stage statistics and one element-wise normalisation.

TVM lowers ``relax.nn.group_norm`` to one kernel whose schedule reduces each
group (say 10 channels x 4096 pixels) in a single thread: 45% of an SD 1.5
UNet step on an H200. ``decompose_group_norm``, run before legalization,
rewrites it as partial sums over chunks of each group, the sum of those (in
fp32), and one element-wise normalisation that fuses with the SiLU after it:
five kernels, each reading x (through a view) for itself, without a centred
or fp32 copy of x between them. With ``stats_kernels`` (what builds use,
:func:`group_norm_pass`) the statistics come from two hand-scheduled kernels
instead (:mod:`.group_stats`): one per chunk, which reads x from memory once
(its second pass over the chunk comes from the cache), and one that combines
the chunks: three kernels in all, two for a group of one chunk. Without it
(``decompose_group_norm``) they are plain Relax operators, which any target runs.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .group_stats import chunk_stats_kernel, combine_stats_kernel
from .shapes import static_shape

#: The longest chunk one thread group sums in the group-norm statistics.
GROUP_NORM_CHUNK = 1024


def _stat_shape(n: int, groups: int) -> list[int]:
    """How the normalisation reads a group's statistics."""
    return [n, groups, 1, 1]


def _chunks(size: int) -> int:
    """How many chunks to split a group of ``size`` elements into: the fewest
    that divide it evenly with at most :data:`GROUP_NORM_CHUNK` elements each."""
    for parts in range(1, size + 1):
        if size % parts == 0 and size // parts <= GROUP_NORM_CHUNK:
            return parts
    return size


@mutator
class _GroupNormRewriter(PyExprMutator):  # type: ignore[misc]
    """Replace ``relax.nn.group_norm`` (NC..., groups on axis 1) with explicit
    two-stage statistics and an element-wise normalisation."""

    def __init__(self, mod: tvm.IRModule, stats_kernels: bool) -> None:
        super().__init__(mod)
        self.op = tvm.ir.Op.get("relax.nn.group_norm")
        self.astype = tvm.ir.Op.get("relax.astype")
        self.stats_kernels = stats_kernels
        #: The statistics kernels made so far, by what they are made for.
        self.kernels: dict[tuple[object, ...], relax.GlobalVar] = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if call.op != self.op:
            return call
        attrs = call.attrs
        x, gamma, beta = call.args
        shape = static_shape(x)
        if (
            shape is None
            or int(attrs.channel_axis) != 1
            or [int(a) for a in attrs.axes] != list(range(2, len(shape)))
        ):
            return call
        return self.builder_.normalize(self._decompose(call, x, gamma, beta, shape))

    def _decompose(
        self, call: relax.Call, x: relax.Expr, gamma: relax.Expr, beta: relax.Expr, shape: list[int]
    ) -> relax.Expr:
        op = relax.op
        attrs = call.attrs
        groups = int(attrs.num_groups)
        n, channels = shape[0], shape[1]
        size = channels // groups * math.prod(shape[2:])
        parts = _chunks(size)
        dtype = x.ty.dtype
        emit = self.builder_.emit
        eps = float(attrs.epsilon)
        stats = self._kernel_stats if self.stats_kernels else self._relax_stats
        mean, inv = stats(self._stored(x), shape, groups, parts, eps)
        # x as it is (in fp32), each group's statistics read by its channels:
        # element-wise in x's own shape, so a slice of the result is the same
        # arithmetic on a slice of x (:func:`.row_slices.sink_row_slices`).
        whole = op.astype(x, "float32") if dtype != "float32" else x
        per_channel = [n, channels] + [1] * (len(shape) - 2)
        mean, inv = (_by_channel(s, n, groups, channels, per_channel) for s in (mean, inv))
        normed = op.multiply(op.subtract(whole, mean), inv)
        affine = [channels] + [1] * (len(shape) - 2)
        out = normed
        if attrs.center or attrs.scale:
            f32 = dtype != "float32"
            scale = emit(op.reshape(op.astype(gamma, "float32") if f32 else gamma, affine))
            shift = emit(op.reshape(op.astype(beta, "float32") if f32 else beta, affine))
            out = op.add(op.multiply(emit(normed), scale), shift)
        # Returned unbound: the caller binds it. An emitted variable returned
        # here would be bound again to the call's variable, and FuseOps fuses
        # nothing across such an alias (the normalisation would stay a
        # kernel of its own, apart from the SiLU and im2col after it).
        return op.astype(out, dtype) if dtype != "float32" else out

    def _stored(self, x: relax.Expr) -> relax.Expr:
        """What the statistics read: the fp16 value where x is only its cast to
        fp32 (an activation stored in fp16, :mod:`.half_activations`), else x."""
        value = self.lookup_binding(x) if isinstance(x, relax.Var) else None
        if (
            isinstance(value, relax.Call)
            and value.op == self.astype
            and str(x.ty.dtype) == "float32"
            and str(value.args[0].ty.dtype) == "float16"
        ):
            stored: relax.Expr = value.args[0]
            return stored
        return x

    def _relax_stats(
        self, x: relax.Expr, shape: list[int], groups: int, parts: int, eps: float
    ) -> tuple[relax.Expr, relax.Expr]:
        """Each group's mean and ``1 / sqrt(var + eps)``, shaped as the
        normalisation reads them, as Relax sums: of x,
        then of ``(x - mean)^2`` straight from x (no centred copy), each in two
        kernels over chunks of the groups, or one for a group of one chunk."""
        op, emit = relax.op, self.builder_.emit
        n, size = shape[0], math.prod(shape[1:]) // groups

        def total(values: relax.Expr) -> relax.Expr:
            """The sum of each group: of its chunks (the last axis), then of
            those; a group of one chunk has it in one kernel (a sum over one
            value, or one keeping a last axis of one after a sum over the whole
            group, is a kernel dlight's rules cannot schedule)."""
            partial = emit(op.sum(values, axis=[-1]))
            return partial if parts == 1 else emit(op.sum(partial, axis=[-1], keepdims=True))

        chunk = size // parts
        # x's views for the two sums, and how the second reads the first's result.
        if parts > 1:
            chunked, by_group, per_group = (
                [n, groups, parts, chunk],
                [n * groups, parts, chunk],
                [n * groups, 1, 1],
            )
        else:
            chunked, by_group, per_group = [n * groups, size], [n, groups, size], [n, groups, 1]
        count = relax.const(float(size), "float32")
        sums = total(_view(x, chunked))
        # Each consumer of the sums divides them itself (differently written,
        # so not merged): a kernel of its own for the mean would be one more.
        mean_k = op.multiply(op.reshape(sums, per_group), relax.const(1.0 / size, "float32"))
        centred = op.subtract(_view(x, by_group), mean_k)
        stat = _stat_shape(n, groups)
        var = op.divide(op.reshape(total(op.multiply(centred, centred)), stat), count)
        inv = emit(op.rsqrt(op.add(var, relax.const(eps, "float32"))))
        return op.divide(op.reshape(sums, stat), count), inv

    def _kernel_stats(
        self, x: relax.Expr, shape: list[int], groups: int, parts: int, eps: float
    ) -> tuple[relax.Expr, relax.Expr]:
        """Each group's mean and ``1 / sqrt(var + eps)``, shaped as the
        normalisation reads them, from the kernels of :mod:`.group_stats`
        (``parts`` chunks a group, in x's order)."""
        dtype, rows = str(x.ty.dtype), shape[0] * groups
        chunk = math.prod(shape) // (rows * parts)
        flat = relax.TensorType((rows * parts,), "float32")
        key: tuple[object, ...] = (
            "chunks",
            tuple(shape),
            dtype,
            parts,
            eps if parts == 1 else None,
        )
        if key not in self.kernels:
            kernel = chunk_stats_kernel(
                tuple(shape), dtype, rows * parts, chunk, eps if parts == 1 else None
            )
            self.kernels[key] = self.builder_.add_func(kernel, "group_norm_chunk_stats")
        stats = self.builder_.emit(relax.call_tir(self.kernels[key], [x, x], [flat, flat]))
        if parts > 1:
            key = ("groups", rows, parts, chunk, eps)
            if key not in self.kernels:
                kernel = combine_stats_kernel(rows, parts, chunk, eps)
                self.kernels[key] = self.builder_.add_func(kernel, "group_norm_stats")
            grouped = relax.TensorType((rows,), "float32")
            chunk_stats = [relax.TupleGetItem(stats, i) for i in (0, 1)]
            stats = self.builder_.emit(
                relax.call_tir(self.kernels[key], chunk_stats, [grouped, grouped])
            )
        stat = _stat_shape(shape[0], groups)
        mean, inv = (relax.op.reshape(relax.TupleGetItem(stats, i), stat) for i in (0, 1))
        return mean, inv


def _by_channel(
    stat: relax.Expr, n: int, groups: int, channels: int, per_channel: list[int]
) -> relax.Expr:
    """A statistic of each group (``[n, groups, 1, 1]``) repeated for each of
    the group's channels, shaped to broadcast over x."""
    op = relax.op
    repeated = op.broadcast_to(op.reshape(stat, [n, groups, 1]), [n, groups, channels // groups])
    return op.reshape(repeated, per_channel)


def _view(x: relax.Expr, dims: list[int]) -> relax.Expr:
    """x in ``dims``, in fp32: each kernel reads x through a view of its own (a
    different shape, so not merged as a common subexpression), so that no view
    or fp32 copy of x is written out for several."""
    viewed = relax.op.reshape(x, dims)
    return relax.op.astype(viewed, "float32") if str(x.ty.dtype) != "float32" else viewed


def _rewrite(mod: tvm.IRModule, stats_kernels: bool) -> tvm.IRModule:
    rewriter = _GroupNormRewriter(mod, stats_kernels)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    result: tvm.IRModule = rewriter.builder_.get()
    return result


@tvm.transform.module_pass(opt_level=0, name="wsd.DecomposeGroupNorm")  # type: ignore[untyped-decorator]
def decompose_group_norm(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Rewrite every static-shape ``relax.nn.group_norm`` of ``mod``'s Relax
    functions, the statistics as Relax sums (any target runs them)."""
    return _rewrite(mod, stats_kernels=False)


def group_norm_pass(stats_kernels: bool = True) -> tvm.transform.Pass:
    """The group-norm rewrite a GPU build runs: with ``stats_kernels``, the
    statistics from the two kernels of :mod:`.group_stats`; without, as
    ``decompose_group_norm``."""
    if not stats_kernels:
        return decompose_group_norm

    @tvm.transform.module_pass(opt_level=0, name="wsd.DecomposeGroupNormStatsKernels")  # type: ignore[untyped-decorator]
    def stats_kernels_pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return _rewrite(mod, stats_kernels=True)

    return stats_kernels_pass
