"""Fused attention: one kernel, online softmax, no score matrix in memory.

diffusers' classic attention (what the capture exports: WebGPU rejects the
graph of torch's ``scaled_dot_product_attention``) is, per batch-head,
``softmax(Q K^T * scale) V`` as two batched matmuls around a softmax, and
the score matrix between them is a tensor of its own: 16 x 4096 x 4096
floats (1 GiB) in an SD 1.5 UNet at 512x512, more than many devices let one
binding hold. ``fuse_attention``, run before legalization, finds that chain
in the Relax graph (with or without the casts around the softmax that fp16
builds have) and replaces it with one call to a hand-written kernel with an
online softmax (:func:`.online_softmax.attention_kernel`), or, on the
subgroup-matrix path, with flash attention on tensor cores or the chain in
chunks of queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from .chunked_attention import chunked_attention
from .flash_attention import FlashTiles, flash_attention_kernel, flash_fits
from .online_softmax import AttentionTiles, attention_kernel
from .shapes import static_shape


@dataclass(frozen=True)
class _Chain:
    """A matched attention chain: its Q, K (not transposed), V and the scale."""

    q: relax.Expr
    k: relax.Expr
    v: relax.Expr
    scale: float


def _const_value(expr: relax.Expr) -> float | None:
    if isinstance(expr, tvm.ir.expr.Constant):
        data = expr.value.numpy()
        if data.shape == ():
            return float(data)
    return None


#: Splits ``[n, l, h, d]`` into heads (and back): the axes of the head transposes.
_HEAD_AXES = [0, 2, 1, 3]


@mutator
class _AttentionFuser(PyExprMutator):  # type: ignore[misc]
    """Replace ``matmul(softmax(matmul(q, permute(k)) * c), v)`` (3-D, static
    shapes, casts around the softmax allowed) with one fused kernel call.

    ``heads=True``: only chains whose Q, K and V are split into heads by
    ``reshape -> permute_dims -> reshape`` and whose output is merged back the
    same way, rooted at the merging reshape; the kernel then reads and writes
    the heads side by side and the six transposes go. ``heads=False``: any
    chain, rooted at its last matmul."""

    def __init__(
        self,
        mod: tvm.IRModule,
        tiles: AttentionTiles | None,
        *,
        heads: bool,
        min_bytes: int,
        chunk_bytes: int = 0,
        flash: FlashTiles | None = None,
    ) -> None:
        super().__init__(mod)
        self.tiles, self.heads, self.min_bytes = tiles, heads, min_bytes
        self.chunk_bytes, self.flash = chunk_bytes, flash
        self.ops = {
            name: tvm.ir.Op.get(f"relax.{name}")
            for name in ("matmul", "nn.softmax", "astype", "multiply", "permute_dims", "reshape")
        }
        self.kernels: dict[tuple[int, ...] | tuple[object, ...], relax.GlobalVar] = {}

    def _producer(self, expr: relax.Expr, op: str, *, casts: bool = True) -> relax.Call | None:
        """The call to ``op`` that ``expr`` is bound to, looking through casts if ``casts``."""
        while True:
            if isinstance(expr, relax.Var):
                bound = self.lookup_binding(expr)
                if bound is None:
                    return None
                expr = bound
            if not isinstance(expr, relax.Call):
                return None
            if expr.op == self.ops[op]:
                return expr
            if casts and expr.op == self.ops["astype"] and op != "astype":
                expr = expr.args[0]
                continue
            return None

    def _scale(self, scaled: relax.Call) -> tuple[relax.Call, float] | None:
        """The scores matmul under ``scaled`` (a multiply by a scalar constant) and the scale."""
        for lhs, rhs in (scaled.args, tuple(reversed(scaled.args))):
            value = _const_value(rhs)
            if value is None:
                cast = self._producer(rhs, "astype")
                value = _const_value(cast.args[0]) if cast is not None else None
            scores = self._producer(lhs, "matmul")
            if value is not None and scores is not None:
                return scores, value
        return None

    def _match(self, call: relax.Call) -> _Chain | None:
        softmax = self._producer(call.args[0], "nn.softmax")
        if softmax is None or int(softmax.attrs.axis) not in (-1, 2):
            return None
        scaled = self._producer(softmax.args[0], "multiply")
        found = self._scale(scaled) if scaled is not None else None
        if found is None:
            return None
        scores, scale = found
        k_t = self._producer(scores.args[1], "permute_dims")
        if k_t is None or [int(a) for a in k_t.attrs.axes] != [0, 2, 1]:
            return None
        return _Chain(scores.args[0], k_t.args[0], call.args[1], scale)

    def _split_heads(self, expr: relax.Expr) -> tuple[relax.Expr, int] | None:
        """``(x, h)`` when ``expr`` is ``x: [n, l, h * d]`` split into ``[n * h, l, d]`` by
        ``reshape -> permute_dims(0, 2, 1, 3) -> reshape``."""
        outer = self._producer(expr, "reshape", casts=False)
        perm = (
            self._producer(outer.args[0], "permute_dims", casts=False)
            if outer is not None
            else None
        )
        if perm is None or [int(a) for a in perm.attrs.axes] != _HEAD_AXES:
            return None
        inner = self._producer(perm.args[0], "reshape", casts=False)
        split = static_shape(perm.args[0])
        if inner is None or split is None:
            return None
        x = inner.args[0]
        n, length, heads, depth = split
        if static_shape(x) != [n, length, heads * depth]:
            return None
        return x, heads

    def _emit(self, chain: _Chain, shapes: list[list[int]], heads: int) -> relax.Expr | None:
        """The kernel call for ``chain`` whose Q, K, V have ``shapes`` (heads side by side
        when ``heads > 1``), or None when they do not fit together."""
        dtypes = {str(x.ty.dtype) for x in (chain.q, chain.k, chain.v)}
        if len(dtypes) != 1 or any(len(s) != 3 for s in shapes):
            return None
        (n, queries, width), (nk, keys, kw), vshape = shapes
        dtype = dtypes.pop()
        if (nk, kw) != (n, width) or vshape != [n, keys, width] or width % heads:
            return None
        batch, depth = n * heads, width // heads
        if 4 * batch * queries * keys <= self.min_bytes:
            return None  # a score matrix this small is cheaper stored (see fuse_attention_pass)
        if self.chunk_bytes:
            q, k, v = chain.q, chain.k, chain.v
            if self.flash and dtype == "float16" and flash_fits(queries, keys, depth, self.flash):
                found: tuple[object, ...] = ("flash", batch, queries, keys, depth, chain.scale)
                if found not in self.kernels:
                    kernel = flash_attention_kernel(
                        batch, queries, keys, depth, chain.scale, self.flash
                    )
                    self.kernels[found] = self.builder_.add_func(kernel, "flash_attention")
                out = relax.TensorType((n, queries, width), dtype)
                return relax.call_tir(self.kernels[found], [q, k, v], out)
            return chunked_attention(self.builder_, q, k, v, chain.scale, self.chunk_bytes)
        key = (batch, queries, keys, depth, dtype, chain.scale, heads)
        if key not in self.kernels:
            kernel = attention_kernel(
                batch, queries, keys, depth, dtype, chain.scale, self.tiles, heads
            )
            self.kernels[key] = self.builder_.add_func(kernel, "fused_attention")
        out = relax.TensorType((n, queries, width), dtype)
        return relax.call_tir(self.kernels[key], [chain.q, chain.k, chain.v], out)

    def _fold_heads(self, call: relax.Call) -> relax.Expr | None:
        """``call`` (a reshape merging heads) with the attention under it fused."""
        perm = self._producer(call.args[0], "permute_dims", casts=False)
        if perm is None or [int(a) for a in perm.attrs.axes] != _HEAD_AXES:
            return None
        inner = self._producer(perm.args[0], "reshape", casts=False)
        attn = self._producer(inner.args[0], "matmul", casts=False) if inner is not None else None
        chain = self._match(attn) if attn is not None else None
        if chain is None:
            return None
        split = [self._split_heads(x) for x in (chain.q, chain.k, chain.v)]
        if any(s is None for s in split) or len({s[1] for s in split if s}) != 1:
            return None
        xs = [s[0] for s in split if s]
        heads = split[0][1] if split[0] else 1
        if attn is None or str(attn.ty.dtype) != str(xs[0].ty.dtype):
            return None
        shapes = [static_shape(x) or [] for x in xs]
        if static_shape(call) != shapes[0]:  # the merged output is shaped like q
            return None
        return self._emit(_Chain(xs[0], xs[1], xs[2], chain.scale), shapes, heads)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if self.heads and call.op == self.ops["reshape"]:
            folded = self._fold_heads(call)
            return call if folded is None else folded
        if self.heads or call.op != self.ops["matmul"]:
            return call
        chain = self._match(call)
        if chain is None or str(call.ty.dtype) != str(chain.q.ty.dtype):
            return call
        shapes = [static_shape(x) or [] for x in (chain.q, chain.k, chain.v)]
        fused = self._emit(chain, shapes, 1)
        return call if fused is None else fused


#: Attention whose fp32 score matrix is at most this large stays two matmuls
#: around a softmax (see :func:`fuse_attention_pass`).
FUSE_ABOVE_BYTES = 256 * 2**20


def fuse_attention_pass(
    tiles: AttentionTiles | None = None,
    min_bytes: int = FUSE_ABOVE_BYTES,
    chunk_bytes: int = 0,
    flash: FlashTiles | None = None,
) -> tvm.transform.Pass:
    """The pass replacing every matched attention chain of ``mod``'s Relax
    functions whose fp32 score matrix would be larger than ``min_bytes`` with a
    fused kernel tiled by ``tiles`` (by default :func:`attention_tiles` of its
    head dimension), dropping the chains' dead bindings.

    Smaller attention stays unfused because wsd's tiled matmuls and the
    softmax are faster than the fused kernel there (measured on the H200:
    SDXL's 60 attentions over 1024 tokens took 94 ms a UNet step fused); the
    threshold keeps every score matrix a device binds within 256 MiB, the VAE
    decoder's largest activation at SD 1.5 512. The chains whose heads fold
    into the kernel are replaced first, then the rest.

    ``chunk_bytes`` (the ``subgroup-matrix`` path): no fused kernel; the
    chains stay matmuls around a softmax (on tensor cores there), computed in
    ranges of query rows whose scores take at most ``chunk_bytes``
    (:mod:`.chunked_attention`). With ``flash`` too, the chains that
    :func:`.flash_attention.flash_fits` takes are one kernel on tensor cores
    instead (:mod:`.flash_attention`)."""

    @tvm.transform.module_pass(opt_level=0, name="wsd.FuseAttention")  # type: ignore[untyped-decorator]
    def fuse_attention(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        for heads in (False,) if chunk_bytes else (True, False):
            fuser = _AttentionFuser(
                mod, tiles, heads=heads, min_bytes=min_bytes, chunk_bytes=chunk_bytes, flash=flash
            )
            for gvar, func in mod.functions_items():
                if isinstance(func, relax.Function):
                    fuser.builder_.update_func(gvar, fuser.visit_expr(func))
            mod = relax.transform.DeadCodeElimination()(fuser.builder_.get())
        return mod

    return fuse_attention


fuse_attention = fuse_attention_pass()
