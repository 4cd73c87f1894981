"""One Relax IRModule for a whole SD 1.5 or SDXL pipeline, with its weights.

The phases, in the order they run (read :func:`build_pipeline_module` top to bottom):

1. Import: each captured component (``torch.export``) becomes one Relax
   function named after it, its weights as trailing parameters.
2. Precision: ``fp16`` converts the models with ``ToMixedPrecision``; every
   function's inputs and outputs stay float32. An SDXL VAE whose config says
   ``force_upcast`` (it overflows in fp16) stays fp32, as diffusers runs it.
3. Weight transforms: everything that depends only on weights (casts to
   fp16, transposes, reshapes) is lifted into ``<name>_transform_params``,
   which runs here, once, on the CPU; the browser gets its results and
   never repeats it. Phases 1-3 run one component at a time, and the
   transform runs in chunks (:mod:`wsd_compile.weight_stream`), so that
   only about one chunk of raw weights is in memory at once: compiling SDXL
   peaks at 8.6 GiB of RSS instead of 21.9.
4. Glue: the pipeline's own functions (CFG pairing and combine, the
   scheduler's linear combinations, image to RGBA, all float32) join.
5. Bundling: each model function takes its weights as one tuple argument,
   which the page builds once from the tensor cache.

The module builds for WebGPU (the product) and for ``llvm`` (tests compare
each function with torch on the CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from .errors import WsdCompileError
from .glue import GlueShapes, XLTextShapes, glue_module
from .kinds import PRECISIONS, TILE_GRAPHS, kind_build
from .lora import LoraTarget, lora_targets
from .quantize import scheme
from .quantized_graph import QuantizedComponent, quantize_functions
from .weight_stream import import_graph, release_free_memory, transform_weights

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline, ComponentSpec


@dataclass(frozen=True)
class TensorInfo:
    """A function input or output: name, static shape, dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class FunctionInfo:
    """A compiled function: its tensor inputs, outputs, and whose weights it takes."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    params: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "params": self.params,
        }


@dataclass(frozen=True)
class PipelineModule:
    """The whole pipeline as one IRModule, and the weights its functions take.

    ``params[component]`` are the (build-time transformed) weights, in the
    order of the function's weight tuple; ``component_precision`` is each
    model function's arithmetic (``precision``, or ``fp32`` for an upcast VAE).
    """

    mod: tvm.IRModule
    params: dict[str, list[np.ndarray]]
    functions: dict[str, FunctionInfo]
    precision: str
    component_precision: dict[str, str] = field(default_factory=dict)
    quantize: str = "none"
    """The weights' quantization (``none``, ``int8``, ``int4``: :mod:`wsd_compile.quantize`)."""
    quantized: dict[str, QuantizedComponent] = field(default_factory=dict)
    """What quantization did to each component it applies to."""
    lora: dict[str, dict[str, list[LoraTarget]]] = field(default_factory=dict)
    """The weights a LoRA may change, by component and module path
    (:mod:`wsd_compile.lora`; empty for quantized weights)."""


def _single_output(func: relax.Function) -> relax.Function:
    """Return a one-element tuple's element itself, so callers get a tensor."""
    ret = func.ret_ty
    if not isinstance(ret, relax.TupleType) or len(ret.fields) != 1:
        return func
    body = relax.SeqExpr(func.body.blocks, relax.TupleGetItem(func.body.body, 0))
    unwrapped = relax.Function(func.params, body, ret.fields[0], func.is_pure, func.attrs)
    normalized: relax.Function = relax.BlockBuilder().normalize(unwrapped)
    return normalized


#: The components a LoRA may change.
LORA_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


def _component_function(
    name: str, program: list[Any], precision: str
) -> tuple[relax.Function, list[np.ndarray], dict[str, list[LoraTarget]]]:
    """Phases 1, 3 and 4 for one component: its function and its transformed weights.

    The raw weights (a real SDXL UNet has 10.3 GB in fp32) are never copied
    all at once: the import leaves them as the program's torch tensors, and
    the transform reads them a chunk at a time (:mod:`wsd_compile.weight_stream`).
    ``program`` holds the component's ``ExportedProgram`` and is emptied here:
    when the caller holds no other reference, the raw weights are freed as
    soon as the transformed ones exist. The third result: the weights a LoRA
    may change (:func:`wsd_compile.lora.lora_targets`).
    """
    imported, weights, weight_names = import_graph(program.pop())
    func = _single_output(imported).with_attr("global_symbol", name)
    func = fold_pad_into_conv(unbroadcast_matmul_weights(func))
    del imported
    mod = tvm.IRModule({name: func})
    if precision == "fp16":
        mod = relax.transform.ToMixedPrecision(out_dtype="float16")(mod)
        mod[name] = half_embedding_tables(mod[name])
    mod = relax.transform.LiftTransformParams()(mod)
    transform = mod[f"{name}_transform_params"]
    targets = lora_targets(name, transform, weight_names) if name in LORA_COMPONENTS else {}
    transformed = transform_weights(transform, weights)
    del weights
    return mod[name], transformed, targets


def _static_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    values = ty.shape.values
    if not all(isinstance(v, tvm.tirx.IntImm) for v in values):
        return None
    return tuple(int(v) for v in values)


def unbroadcast_matmul_weights(func: relax.Function) -> relax.Function:
    """``matmul(x, broadcast_to(w, [*batch, k, n]))`` with a 2-D ``w`` as ``matmul(x, w)``.

    PyTorch's ``matmul`` of a 3-D input that it cannot fold into 2-D (a
    permuted one: SDXL's ``proj_in`` with ``use_linear_projection``) expands
    the weight to the batch and calls ``bmm``. Lifted as it is, that weight
    would be stored once per batch entry (14 of SDXL's, 2 x 1280 x 1280 each)
    and could not be quantized; ``matmul`` broadcasts a 2-D operand itself.
    """
    x, w, shape = wildcard(), wildcard(), wildcard()
    pattern = is_op("relax.matmul")(x, is_op("relax.broadcast_to")(w, shape))

    def rewrite(call: relax.Call, matches: dict[Any, relax.Expr]) -> relax.Expr:
        x_shape, w_shape = _static_shape(matches[x]), _static_shape(matches[w])
        if x_shape is None or w_shape is None or len(w_shape) != 2 or len(x_shape) < 3:
            return call
        if _static_shape(call) != (*x_shape[:-1], w_shape[1]):
            return call  # the broadcast widened the batch: keep it
        return relax.op.matmul(matches[x], matches[w], out_dtype=call.attrs.out_dtype)

    rewritten: relax.Function = relax.analysis.remove_all_unused(
        rewrite_call(pattern, rewrite, func)
    )
    return rewritten


def fold_pad_into_conv(func: relax.Function) -> relax.Function:
    """``conv2d(pad(x), w)`` with a zero pad of H and W as one ``conv2d`` padding them.

    The VAE encoder's downsamplers pad the bottom and right by one
    (``F.pad(x, (0, 1, 0, 1))``) before a stride-2 convolution without
    padding. Left as two ops, the pad fuses into the previous convolution as
    an epilogue of another shape, which the GPU matmul schedule cannot take;
    folded, it costs neither a kernel nor a buffer.
    """
    x, w = wildcard(), wildcard()
    padded = is_op("relax.nn.pad")(x)
    pattern = is_op("relax.nn.conv2d")(padded, w)

    def rewrite(call: relax.Call, matches: dict[Any, relax.Expr]) -> relax.Expr:
        pad = matches[padded]
        a, c = pad.attrs, call.attrs
        widths = [int(v) for v in a.pad_width]
        value = float(a.pad_value) if getattr(a, "pad_value", None) is not None else 0.0
        if (
            str(a.pad_mode) != "constant"
            or value != 0.0
            or str(c.data_layout) != "NCHW"
            or len(widths) != 8
            or any(widths[:4])
        ):
            return call
        top, bottom, left, right = widths[4:]
        p = [int(v) for v in c.padding]  # top, left, bottom, right
        return relax.op.nn.conv2d(
            matches[x],
            matches[w],
            strides=c.strides,
            padding=[p[0] + top, p[1] + left, p[2] + bottom, p[3] + right],
            dilation=c.dilation,
            groups=c.groups,
            data_layout=c.data_layout,
            kernel_layout=c.kernel_layout,
            out_layout=c.out_layout,
            out_dtype=c.out_dtype,
        )

    rewritten: relax.Function = relax.analysis.remove_all_unused(
        rewrite_call(pattern, rewrite, func)
    )
    return rewritten


def half_embedding_tables(func: relax.Function) -> relax.Function:
    """Store the float32 embedding tables of an fp16 model in float16.

    ``ToMixedPrecision`` leaves ``take`` in float32, so the token embeddings
    of an fp16 build were stored in float32 (text encoder 2's 49408 x 1280
    table: 253 MB). ``take(w, ids)`` of a float32 weight ``w`` becomes
    ``astype(take(astype(w, float16), ids), float32)``: the cast of ``w`` is
    lifted into the weight transform, the gather reads half the bytes, and the
    rows it returns are what diffusers' fp16 pipeline reads (its weights are
    float16).
    """
    weights = set(func.params[int(func.attrs["num_input"]) :])
    table, ids = wildcard(), wildcard()
    pattern = is_op("relax.take")(table, ids)

    def rewrite(call: relax.Call, matches: dict[Any, relax.Expr]) -> relax.Expr:
        w = matches[table]
        if w not in weights or str(w.ty.dtype) != "float32" or call.attrs.axis != 0:
            return call
        half = relax.op.take(relax.op.astype(w, "float16"), matches[ids], axis=0)
        return relax.op.astype(half, "float32")

    rewritten: relax.Function = rewrite_call(pattern, rewrite, func)
    return rewritten


def _tensor_infos(names: list[str], types: list[Any]) -> tuple[TensorInfo, ...]:
    out = []
    for name, ty in zip(names, types, strict=True):
        if not isinstance(ty, relax.TensorType) or ty.shape is None:
            raise WsdCompileError(f"{name}: expected a tensor of static shape, got {ty}")
        shape = tuple(int(d) for d in ty.shape.values)
        out.append(TensorInfo(name, shape, str(ty.dtype)))
    return tuple(out)


def _output_types(func: relax.Function) -> list[Any]:
    ret = func.ret_ty
    if isinstance(ret, relax.TupleType):
        return list(ret.fields)
    return [ret]


#: Captured graphs that are another graph at other shapes, so take its weights:
#: their functions get the other's weight tuple, and the shards hold it once.
SHARED_WEIGHTS: Mapping[str, str] = TILE_GRAPHS

#: The VAE decoder at the tile shape (``wsd_capture.vae_tile_shape``), when captured.
TILE_FUNCTION = "vae_decode_tile"
#: The VAE encoder at the image size of one tile, when captured.
ENCODE_TILE_FUNCTION = "vae_encode_tile"


def _component_precision(captured: CapturedPipeline, name: str, precision: str) -> str:
    cond = captured.metadata.conditioning
    owner = SHARED_WEIGHTS.get(name, name)
    if owner in ("vae_decode", "vae_encode") and cond is not None and cond.vae_force_upcast:
        return "fp32"
    return precision


def _function_infos(
    mod: tvm.IRModule, specs: Mapping[str, ComponentSpec]
) -> dict[str, FunctionInfo]:
    """Each Relax function's inputs, outputs and weights: a model function (one of
    ``specs``) with its captured tensor names and its component's weights, glue
    without weights."""
    functions: dict[str, FunctionInfo] = {}
    for gv in mod.get_global_vars():
        func = mod[gv]
        name = gv.name_hint
        if not isinstance(func, relax.Function):
            continue  # a TIR function the model functions call (dequantize)
        if name in specs:
            n_in = int(func.attrs["num_input"])
            ins = _tensor_infos(
                [t.name for t in specs[name].inputs], [p.ty for p in func.params[:n_in]]
            )
            outs = _tensor_infos([t.name for t in specs[name].outputs], _output_types(func))
            functions[name] = FunctionInfo(ins, outs, SHARED_WEIGHTS.get(name, name))
        else:
            ins = _tensor_infos([str(p.name) for p in func.params], [p.ty for p in func.params])
            outs = _tensor_infos(["output"], _output_types(func))
            functions[name] = FunctionInfo(ins, outs, None)
    return functions


def build_pipeline_module(
    captured: CapturedPipeline,
    *,
    precision: str = "fp32",
    consume: bool = False,
    quantize: str = "none",
) -> PipelineModule:
    """Assemble the pipeline's IRModule and its (transformed) weights.

    ``captured.metadata.kind`` (``sd15`` or ``sdxl``) decides the components
    and the glue. ``precision`` is ``"fp32"`` or ``"fp16"`` (weights and model
    arithmetic in half precision; inputs, outputs and the glue stay float32).
    ``consume=True`` removes each component from ``captured.components`` once it
    is imported, so its fp32 weights are freed as the build goes (what the
    ``compile_*`` functions do with captures they made themselves: SDXL's fp32
    weights alone are 14 GB). ``quantize`` (``none``, ``int8``, ``int4``) stores
    the UNet's and text encoders' matmul and convolution weights as packed
    integers and scales (:mod:`wsd_compile.quantized_graph`).
    """
    quant = scheme(quantize)
    if precision not in PRECISIONS:
        raise WsdCompileError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    kind = captured.metadata.kind
    build = kind_build(kind)
    # The graphs, in the order the capture lists them (the order the page runs them).
    names = tuple(captured.metadata.components)
    wanted = {g for graphs in build.tasks.values() for g in graphs}
    missing = [c for c in sorted(wanted) if c not in captured.components]
    if missing:
        raise WsdCompileError(
            f"the captured pipeline lacks {', '.join(missing)}; capture it with wsd-capture {kind}"
        )

    # Phases 1, 3, 4 per component: import as a function named after it,
    # precision, lift the weight-only computations and run them now.
    funcs: dict[str, relax.Function] = {}
    params: dict[str, list[np.ndarray]] = {}
    component_precision = {name: _component_precision(captured, name, precision) for name in names}
    specs = {name: captured.metadata.components[name] for name in names}
    lora: dict[str, dict[str, list[LoraTarget]]] = {}
    for name in names:
        component = captured.components.pop(name) if consume else captured.components[name]
        holder = [component.program]
        del component
        funcs[name], params[name], targets = _component_function(
            name, holder, component_precision[name]
        )
        if targets:
            lora[name] = targets
    for name, owner in SHARED_WEIGHTS.items():
        if name in params:
            _check_same_weights(name, params.pop(name), owner, params[owner])

    # Phase 4: the glue functions, shaped by the captured components (by tensor name).
    glue = glue_module(build.glue, _glue_shapes(specs, build.glue))
    mod = tvm.IRModule({**{gv.name_hint: glue[gv] for gv in glue.get_global_vars()}, **funcs})
    quantized: dict[str, QuantizedComponent] = {}
    if quant is not None:
        mod, quantized = quantize_functions(mod, params, quant)
        release_free_memory()

    # Phase 5: one weight tuple per model function.
    functions = _function_infos(mod, specs)
    mod = relax.transform.BundleModelParams()(mod)
    return PipelineModule(
        mod,
        params,
        functions,
        precision,
        component_precision,
        quantize,
        quantized,
        # Quantized weights take no merge: such a build takes no LoRA.
        lora if quant is None else {},
    )


def _check_same_weights(
    name: str, weights: list[np.ndarray], owner: str, owner_weights: list[np.ndarray]
) -> None:
    """``name``'s transformed weights are ``owner``'s, in the same order (else the
    shared tuple would feed it the wrong tensors)."""
    same = len(weights) == len(owner_weights) and all(
        a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
        for a, b in zip(weights, owner_weights, strict=True)
    )
    if not same:
        raise WsdCompileError(
            f"{name} does not take {owner}'s weights in {owner}'s order: "
            "capture both from the same module"
        )


def _glue_shapes(specs: Mapping[str, ComponentSpec], families: tuple[str, ...]) -> GlueShapes:
    """What the glue of ``families`` joins, from the captured graphs' tensors by name."""
    text = specs["unet"].input("encoder_hidden_states").shape
    xl_text = None
    if "xl_text" in families:
        xl_text = XLTextShapes(
            first=specs["text_encoder"].output("hidden_states").shape,
            second=specs["text_encoder_2"].output("hidden_states").shape,
            pooled=specs["text_encoder_2"].output("text_embeds").shape,
        )
    return GlueShapes(
        latent=specs["vae_decode"].input("latents").shape,
        text=(1, *text[1:]),
        image=specs["vae_decode"].output("image").shape,
        xl_text=xl_text,
        unet_channels=specs["unet"].input("sample").shape[1],
    )


def build_sd15_module(captured: CapturedPipeline, *, precision: str = "fp32") -> PipelineModule:
    """:func:`build_pipeline_module` for a captured SD 1.5-class pipeline."""
    _expect_kind(captured, "sd15")
    return build_pipeline_module(captured, precision=precision)


def build_sdxl_module(captured: CapturedPipeline, *, precision: str = "fp32") -> PipelineModule:
    """:func:`build_pipeline_module` for a captured SDXL pipeline."""
    _expect_kind(captured, "sdxl")
    return build_pipeline_module(captured, precision=precision)


def _expect_kind(captured: CapturedPipeline, kind: str) -> None:
    have = captured.metadata.kind
    if have != kind:
        raise WsdCompileError(
            f"the captured pipeline is {have}, not {kind}: use compile_{have} / wsd-compile {have}"
        )
