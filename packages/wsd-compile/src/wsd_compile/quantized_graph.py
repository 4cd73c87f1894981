"""Model functions that take quantized weights: packed integers and scales instead of a weight.

:func:`quantize_functions` rewrites the UNet and text encoder functions of a
pipeline module (before their weights are bundled): each weight that is a
linear layer's (the second operand of a ``matmul``, ``[in, out]``) or a
convolution's (the second of a ``conv2d``, ``[out, in, kh, kw]``), and is
used nowhere else, becomes two parameters, its packed integers and its
scales (:mod:`wsd_compile.quantize`), and the function computes the weight
with a call to a ``dequantize`` TIR function. On the GPU that call never
runs by itself: ``kernels.dequantize`` fuses it into the matmul or
convolution that reads the weight, so the shader unpacks the integers as it
loads its tiles. On the CPU (``llvm``, the tests) it runs as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tvm
from tvm import relax, te, tirx

from .errors import WsdCompileError
from .quantize import (
    SCHEMES,
    QuantScheme,
    dequantize_te,
    quantizable,
    quantize_weight,
)

#: The model functions whose weights are quantized (the VAE keeps its own).
QUANTIZED_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
#: PrimFunc attributes of a ``dequantize`` function: its scheme and packed axis.
SCHEME_ATTR = "wsd.dequantize"
PACK_AXIS_ATTR = "wsd.pack_axis"

_MATMUL = tvm.ir.Op.get("relax.matmul")
_CONV2D = tvm.ir.Op.get("relax.nn.conv2d")
_CALL_TIR = tvm.ir.Op.get("relax.call_tir")


@dataclass(frozen=True)
class QuantizedComponent:
    """What quantization did to one component's weights."""

    tensors: int
    """Weights stored as packed integers and scales."""
    kept: int
    """Weights kept in the build's precision (embeddings, norms, biases, odd shapes)."""
    bytes_before: int
    bytes_after: int


def dequantize_primfunc(
    q: QuantScheme,
    *,
    pack_axis: int,
    shape: Sequence[int],
    packed_shape: Sequence[int],
    scale_shape: Sequence[int],
    dtype: str,
    scale_dtype: str,
) -> tirx.PrimFunc:
    """The ``dequantize`` TIR function of one weight shape: ``(packed, scales) -> weight``."""
    packed = te.placeholder(tuple(int(d) for d in packed_shape), "uint32", name="packed")
    scales = te.placeholder(tuple(int(d) for d in scale_shape), scale_dtype, name="scales")
    weight = dequantize_te(packed, scales, q, pack_axis=pack_axis, shape=shape, dtype=dtype)
    func: tirx.PrimFunc = te.create_prim_func([packed, scales, weight])
    # Private (no global symbol), as the functions Relax's legalization makes.
    func = func.without_attr("global_symbol")
    return func.with_attr(SCHEME_ATTR, q.name).with_attr(PACK_AXIS_ATTR, pack_axis)


def dequantize_recipe(func: Any) -> tuple[QuantScheme, int] | None:
    """The scheme and packed axis of a ``dequantize`` function (None for any other)."""
    if not isinstance(func, tirx.PrimFunc) or func.attrs is None or SCHEME_ATTR not in func.attrs:
        return None
    return SCHEMES[str(func.attrs[SCHEME_ATTR])], int(func.attrs[PACK_AXIS_ATTR])


def widen_dequantize(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """A float16 ``dequantize`` function remade to read and produce float32
    (for the fp32 kernel path of an fp16 build, whose float16 scales the page widens)."""
    recipe = dequantize_recipe(func)
    if recipe is None:
        raise WsdCompileError("widen_dequantize takes a dequantize function")
    q, axis = recipe
    packed, scales, weight = func.params  # buffer parameters, with their shapes
    return dequantize_primfunc(
        q,
        pack_axis=axis,
        shape=[int(d) for d in weight.shape],
        packed_shape=[int(d) for d in packed.shape],
        scale_shape=[int(d) for d in scales.shape],
        dtype="float32",
        scale_dtype="float32",
    )


def _layouts(func: relax.Function, weights: list[relax.Var]) -> dict[int, tuple[int, int]]:
    """For each weight (by position) that only a matmul or a convolution reads,
    as its second operand: its (reduction axis, output axis)."""
    index = {w: i for i, w in enumerate(weights)}
    uses: dict[int, int] = {}
    layouts: dict[int, tuple[int, int]] = {}
    seen: dict[int, int] = {}

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Var) and expr in index:
            uses[index[expr]] = uses.get(index[expr], 0) + 1
        if not isinstance(expr, relax.Call) or len(expr.args) != 2:
            return
        arg = expr.args[1]
        if not (isinstance(arg, relax.Var) and arg in index):
            return
        j = index[arg]
        ndim = len(arg.ty.shape.values) if arg.ty.shape is not None else -1
        if expr.op.same_as(_MATMUL) and ndim == 2:
            layouts[j] = (0, 1)
        elif expr.op.same_as(_CONV2D) and ndim == 4 and _plain_conv(expr.attrs):
            layouts[j] = (1, 0)
        else:
            return
        seen[j] = seen.get(j, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return {j: layout for j, layout in layouts.items() if uses.get(j) == seen.get(j)}


def _plain_conv(attrs: Any) -> bool:
    return bool(int(attrs.groups) == 1 and attrs.kernel_layout == "OIHW")


def _rewrite_function(
    bb: relax.BlockBuilder,
    name: str,
    arrays: list[np.ndarray],
    q: QuantScheme,
) -> tuple[relax.Function, list[np.ndarray], QuantizedComponent]:
    """``name``'s function with its quantizable weights as packed integers and
    scales (after the weights it keeps), and its new weight list.

    ``arrays`` is consumed: each quantized weight is replaced by an empty
    array once packed, so that the float weights and their packed forms are
    not all in memory together (SDXL's UNet: 5.1 GB and 2.7 GB)."""
    func = bb.get()[name]
    n_in = int(func.attrs["num_input"])
    weights = list(func.params[n_in:])
    layouts = {
        j: layout
        for j, layout in _layouts(func, weights).items()
        if quantizable(arrays[j].shape, q, layout[0])
        and arrays[j].dtype in (np.float16, np.float32)
    }
    kept = [j for j in range(len(weights)) if j not in layouts]
    new_params = list(func.params[:n_in]) + [weights[j] for j in kept]
    new_arrays = [arrays[j] for j in kept]
    bytes_before = int(sum(a.nbytes for a in arrays))
    bindings: list[relax.Binding] = []
    substitute: dict[relax.Var, relax.Expr] = {}
    for j, (pack_axis, out_axis) in sorted(layouts.items()):
        w, arrays[j] = arrays[j], np.empty(0, arrays[j].dtype)
        scale_dtype = "float16" if w.dtype == np.float16 else "float32"
        packed, scales = quantize_weight(
            w, q, pack_axis=pack_axis, out_axis=out_axis, scale_dtype=scale_dtype
        )
        dtype = str(w.dtype)
        gv = _dequantize_function(bb, q, pack_axis, w.shape, packed.shape, scales.shape, dtype)
        p = weights[j]
        packed_var = relax.Var(f"{p.name}_packed", relax.TensorType(packed.shape, "uint32"))
        scales_var = relax.Var(f"{p.name}_scales", relax.TensorType(scales.shape, scale_dtype))
        new_params += [packed_var, scales_var]
        new_arrays += [packed, scales]
        value = relax.DataflowVar(f"{p.name}_dequantized", p.ty)
        call = relax.call_tir(gv, relax.Tuple([packed_var, scales_var]), p.ty)
        bindings.append(relax.VarBinding(value, call))
        substitute[p] = value
    body = func.body
    first, *rest = body.blocks
    if not isinstance(first, relax.DataflowBlock):
        raise WsdCompileError(f"{name}: expected the function to start with a dataflow block")
    blocks = [relax.DataflowBlock(bindings + list(first.bindings)), *rest]
    rewritten = relax.Function(
        list(func.params) + new_params[n_in + len(kept) :],
        relax.SeqExpr(blocks, body.body),
        func.ret_ty,
        func.is_pure,
        func.attrs,
    ).bind_params(substitute)
    # bind_params keeps the inputs, then the kept weights, then the new ones.
    report = QuantizedComponent(
        tensors=len(layouts),
        kept=len(kept),
        bytes_before=bytes_before,
        bytes_after=int(sum(a.nbytes for a in new_arrays)),
    )
    return rewritten, new_arrays, report


def _dequantize_function(
    bb: relax.BlockBuilder,
    q: QuantScheme,
    pack_axis: int,
    shape: Sequence[int],
    packed_shape: Sequence[int],
    scale_shape: Sequence[int],
    dtype: str,
) -> relax.GlobalVar:
    """The module's ``dequantize`` function for one weight shape (added on first use)."""
    dims = "x".join(str(int(d)) for d in shape)
    # The weight's width in the name, not its dtype: the fp32 twin keeps the name.
    name = f"dequantize_{q.name}_{dims}_w{np.dtype(dtype).itemsize * 8}"
    mod = bb.get()
    if name in [gv.name_hint for gv in mod.get_global_vars()]:
        return mod.get_global_var(name)
    scale_dtype = "float16" if dtype == "float16" else "float32"
    func = dequantize_primfunc(
        q,
        pack_axis=pack_axis,
        shape=shape,
        packed_shape=packed_shape,
        scale_shape=scale_shape,
        dtype=dtype,
        scale_dtype=scale_dtype,
    )
    gv: relax.GlobalVar = bb.add_func(func, name)
    return gv


def quantize_functions(
    mod: tvm.IRModule,
    params: dict[str, list[np.ndarray]],
    q: QuantScheme,
    components: Sequence[str] = QUANTIZED_COMPONENTS,
) -> tuple[tvm.IRModule, dict[str, QuantizedComponent]]:
    """Quantize the weights of ``components`` (those in ``mod``): returns the
    rewritten module and what each component became; ``params`` is updated in
    place (each list replaced), so the unquantized arrays are freed."""
    bb = relax.BlockBuilder(mod)
    reports: dict[str, QuantizedComponent] = {}
    for name in components:
        if name not in params:
            continue
        func, params[name], reports[name] = _rewrite_function(bb, name, params.pop(name), q)
        bb.update_func(bb.get().get_global_var(name), func)
    return relax.transform.Normalize()(bb.get()), reports
