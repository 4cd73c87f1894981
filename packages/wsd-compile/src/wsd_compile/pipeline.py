"""``compile_pipeline``: a pipeline of any kind to a folder of static web files, phase by phase."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsd_artifacts import stamp_build, write_manifest, write_tensor_cache

from .buffers import BufferInfo, function_buffers, largest_weight_bytes
from .errors import WsdCompileError
from .glue import MAX_TERMS
from .kernels import DEFAULT_KERNELS, KernelOptions
from .kernels.attention import fuse_attention_pass
from .kernels.passes import fuse_dequantize
from .kinds import PRECISIONS, kind_build, task_functions
from .lora import MERGE_FUNCTION, add_lora_functions
from .output import fresh_output_dir
from .paths import LIBRARY_FILE, KernelPath, planned_paths
from .pipeline_module import (
    ENCODE_TILE_FUNCTION,
    TILE_FUNCTION,
    PipelineModule,
    build_pipeline_module,
)
from .quantize import SCHEMES, WEIGHT_FORMAT, scheme
from .runtime import RuntimeObjects, tvm_version, tvmjs_runtime
from .webgpu import WebGPUBuild, build_webgpu_wasm
from .widen import widen_to_fp32

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline, PipelineMetadata, TokenizerInfo

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_2_FILE = "tokenizer_2.json"


@dataclass(frozen=True)
class CompiledPipeline:
    """What :func:`~wsd_compile.compile_sd15` or :func:`~wsd_compile.compile_sdxl` wrote.

    ``manifest`` is the ``manifest.json`` written in ``out_dir`` (every file
    with its size and sha384); ``seconds`` maps each phase to its wall time;
    ``manifest["limits"]["max_buffer_bytes"]`` is the largest tensor (weight or
    computed) a device must be able to bind.
    """

    out_dir: Path
    manifest: dict[str, Any]
    wasm_bytes: int
    weight_bytes: int
    seconds: dict[str, float] = field(default_factory=dict)
    largest_buffers: list[BufferInfo] = field(default_factory=list)
    """The largest tensors the functions compute (graph level, largest first):
    what decides the WebGPU buffer limits a device needs."""
    kernel_paths: list[KernelPath] = field(default_factory=list)
    """The libraries the build holds, best first (the manifest's ``kernel_paths``)."""


def param_names(component: str, count: int) -> list[str]:
    """The tensor-cache names of a component's weights, in its weight-tuple order."""
    return [f"{component}.{i}" for i in range(count)]


def _weights(module: PipelineModule) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for component, arrays in module.params.items():
        tensors.update(zip(param_names(component, len(arrays)), arrays, strict=True))
    return tensors


def _manifest_body(
    captured: CapturedPipeline, module: PipelineModule, weights: dict[str, np.ndarray]
) -> dict[str, Any]:
    meta = captured.metadata
    components = {}
    for component, arrays in module.params.items():
        names = param_names(component, len(arrays))
        components[component] = {
            "param_names": names,
            "param_count": len(names),
            "param_bytes": int(sum(weights[n].nbytes for n in names)),
            "precision": module.component_precision.get(component, module.precision),
        }
        targets = module.lora.get(component)
        if targets:
            components[component]["lora_targets"] = {
                path: [t.to_json(names) for t in found] for path, found in sorted(targets.items())
            }
        quantized = module.quantized.get(component)
        if quantized is not None and quantized.tensors:
            components[component]["quantization"] = {
                **SCHEMES[module.quantize].to_json(),
                "format": WEIGHT_FORMAT,
                "tensors": quantized.tensors,
                "unquantized_bytes": quantized.bytes_before,
            }
    body: dict[str, Any] = {
        "kind": meta.kind,
        "model": {
            "source": meta.source,
            "precision": module.precision,
            "quantize": module.quantize,
        },
        "image": {"height": meta.height, "width": meta.width},
        "latent": {
            "shape": list(meta.latent_shape),
            "scaling_factor": meta.vae_scaling_factor,
            "vae_scale_factor": meta.vae_scale_factor,
        },
        "library": LIBRARY_FILE,
        "runtime": {"tvm": tvm_version()},
        "weights": "tensor-cache.json",
        "functions": {name: info.to_json() for name, info in sorted(module.functions.items())},
        "tasks": task_functions(meta.kind, module.functions),
        "components": components,
        "scheduler": {
            "class_name": meta.scheduler.class_name,
            "config": meta.scheduler.config,
            "max_terms": MAX_TERMS,
        },
        "tokenizer": _tokenizer_entry(meta.tokenizer, TOKENIZER_FILE),
    }
    if module.lora:
        body["lora"] = {"function": MERGE_FUNCTION}
    tile = module.functions.get(TILE_FUNCTION)
    if tile is not None:
        size = tile.inputs[0].shape[2:]
        body["vae_tiling"] = {
            "function": TILE_FUNCTION,
            "tile": list(size),
            "overlap": [max(1, side // 4) for side in size],
        }
        if ENCODE_TILE_FUNCTION in module.functions:
            body["vae_tiling"]["encode_function"] = ENCODE_TILE_FUNCTION
    if meta.tokenizer_2 is not None:
        body["tokenizer_2"] = _tokenizer_entry(meta.tokenizer_2, TOKENIZER_2_FILE)
    if meta.conditioning is not None:
        cond = meta.conditioning
        body["conditioning"] = {
            "force_zeros_for_empty_prompt": cond.force_zeros_for_empty_prompt,
            "pooled_token": cond.pooled_token,
            "pooled_dim": cond.pooled_dim,
            "time_ids_dim": cond.time_ids_dim,
            "vae_force_upcast": cond.vae_force_upcast,
        }
    return body


def _tokenizer_entry(tok: TokenizerInfo, file: str) -> dict[str, Any]:
    return {
        "file": file,
        "max_length": tok.model_max_length,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }


@contextmanager
def _phase(seconds: dict[str, float], name: str, log: Callable[[str], None]) -> Iterator[None]:
    log(f"{name}...")
    start = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - start, 3)
    log(f"{name}: {seconds[name]:.1f} s")


def _captured(
    kind: str,
    source: str | os.PathLike[str] | CapturedPipeline | None,
    *,
    preset: str | None,
    vae: str | os.PathLike[str] | None,
    height: int | None,
    width: int | None,
) -> tuple[CapturedPipeline, bool]:
    """The capture to compile, and whether it was made here (so it may be consumed):
    ``source`` itself if already captured (checked for ``kind`` and size), else the
    capture of the model directory, or of the preset written to a temporary directory.
    """
    # Imported here: diffusers is slow to import and chatty on import, and a
    # command line must be able to quiet it first.
    from wsd_capture import (
        CapturedPipeline,
        CaptureError,
        capture_model,
        write_preset,
    )

    if (source is None) == (preset is None):
        raise WsdCompileError("give exactly one of a model (directory or hub id) and a preset")
    if isinstance(source, CapturedPipeline):
        if vae is not None:
            raise WsdCompileError(
                "vae= applies when capturing: pass it to wsd_capture.load_pipeline instead"
            )
        _check_captured(source, kind, height, width)
        return source, False
    try:
        if preset is None:
            return capture_model(kind, str(source), height=height, width=width, vae=vae), True
        _check_preset(preset, kind)
        with tempfile.TemporaryDirectory(prefix="wsd-preset-") as tmp:
            path = write_preset(preset, Path(tmp) / preset)
            captured = capture_model(kind, path, height=height, width=width, vae=vae)
        return replace(captured, metadata=replace(captured.metadata, source=preset)), True
    except CaptureError as e:
        # One exception type for callers of compile_*: the capture's message as is.
        raise WsdCompileError(str(e)) from e


def _check_captured(
    captured: CapturedPipeline, kind: str, height: int | None, width: int | None
) -> None:
    meta = captured.metadata
    if meta.kind != kind:
        raise WsdCompileError(
            f"the captured pipeline is {meta.kind}, not {kind}: use compile_{meta.kind}"
        )
    for what, wanted, size in (("height", height, meta.height), ("width", width, meta.width)):
        if wanted is not None and wanted != size:
            raise WsdCompileError(
                f"the captured pipeline has {what} {size}, not {wanted}; capture it again "
                f"with --{what} {wanted}"
            )


def _check_preset(preset: str, kind: str) -> None:
    from wsd_capture import PRESET_KINDS

    preset_kind = PRESET_KINDS.get(preset)
    if preset_kind is None:
        names = [name for name, k in PRESET_KINDS.items() if k == kind]
        raise WsdCompileError(f"unknown preset {preset!r}: choose one of {', '.join(names)}")
    if preset_kind != kind:
        raise WsdCompileError(
            f"{preset} is an {preset_kind} preset: use compile_{preset_kind} "
            f"(wsd-compile {preset_kind})"
        )


def _planned(
    precision: str, fp32_fallback: bool, subgroup_matrix: bool, kernels: KernelOptions
) -> list[KernelPath]:
    """The build's kernel paths (:func:`.paths.planned_paths`), the subgroup-matrix
    one requiring what its workgroup tiles need where ``kernels`` use them."""
    return planned_paths(
        precision,
        fp32_fallback=fp32_fallback,
        subgroup_matrix=subgroup_matrix,
        workgroup_tiles=kernels.subgroup_tiles.enabled,
    )


def compile_pipeline(
    kind: str,
    source: str | os.PathLike[str] | CapturedPipeline | None = None,
    *,
    out_dir: str | os.PathLike[str],
    preset: str | None = None,
    precision: str = "fp32",
    height: int | None = None,
    width: int | None = None,
    vae: str | os.PathLike[str] | None = None,
    runtime: RuntimeObjects | None = None,
    log: Callable[[str], None] | None = None,
    kernels: KernelOptions = DEFAULT_KERNELS,
    fp32_fallback: bool = True,
    subgroup_matrix: bool = False,
    quantize: str = "none",
) -> CompiledPipeline:
    """Compile a pipeline of ``kind`` (``sd15``, ``sdxl``: ``wsd_compile.BUILDS``)
    into ``out_dir``: what :func:`~wsd_compile.compile_sd15` and
    :func:`~wsd_compile.compile_sdxl` do (their docstrings describe the arguments).

    The phases, in order: capture (or take ``source`` as captured), Relax import
    and weight transforms, the tvmjs runtime, the WebGPU build and link, then
    weights, tokenizers, stamp and manifest. An fp16 build also holds the
    ``fp32`` kernel path (:mod:`wsd_compile.paths`) unless ``fp32_fallback`` is
    false: a second library, for devices without ``shader-f16``, reading the
    same weights; with ``subgroup_matrix`` also a library whose matmuls run on
    tensor cores (the ``subgroup-matrix`` path), for devices that have them.
    ``quantize`` (``none``, ``int8``, ``int4``) quantizes the UNet's and text
    encoders' weights (:mod:`wsd_compile.quantize`). The directory is written
    beside ``out_dir`` and renamed into place at the end, so a failure leaves
    nothing behind.
    """
    _check_options(kind, precision, quantize)
    say = log or (lambda _: None)
    out = Path(out_dir)
    seconds: dict[str, float] = {}
    with fresh_output_dir(out) as tmp:
        with _phase(seconds, "capture", say):
            captured, owned = _captured(
                kind, source, preset=preset, vae=vae, height=height, width=width
            )
        with _phase(seconds, "relax", say):
            # A capture passed in by the caller stays intact; our own is consumed.
            module = build_pipeline_module(
                captured, precision=precision, consume=owned, quantize=quantize
            )
        with _phase(seconds, "runtime", say):
            objects = runtime or tvmjs_runtime()
        paths, buffers, builds = _build_libraries(
            module,
            tmp,
            _planned(precision, fp32_fallback, subgroup_matrix, kernels),
            objects=objects,
            kernels=kernels,
            seconds=seconds,
            say=say,
        )
        with _phase(seconds, "weights", say):
            weights = _weights(module)
            write_tensor_cache(tmp, weights, metadata={"kind": kind})
            _write_tokenizers(tmp, captured.metadata)
            body = _manifest_body(captured, module, weights)
            body["kernel_paths"] = [p.to_json() for p in paths]
            main = next(p for p in paths if p.library == LIBRARY_FILE)
            body["limits"] = {"max_buffer_bytes": main.max_buffer_bytes}
            stamp_build(tmp, body)
            manifest = write_manifest(tmp, body)
    seconds["webgpu_compile"] = round(sum(b.compile_seconds for b in builds), 3)
    seconds["link"] = round(sum(b.wasm.seconds for b in builds), 3)
    return CompiledPipeline(
        out_dir=out,
        manifest=manifest,
        wasm_bytes=(out / LIBRARY_FILE).stat().st_size,  # as stamped by stamp_build
        weight_bytes=int(sum(a.nbytes for a in weights.values())),
        seconds=seconds,
        largest_buffers=buffers[:8],
        kernel_paths=paths,
    )


def _check_options(kind: str, precision: str, quantize: str) -> None:
    """Refuse an unknown kind, precision or quantization before anything is loaded."""
    kind_build(kind)
    scheme(quantize)
    if precision not in PRECISIONS:
        raise WsdCompileError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )


def _build_libraries(
    module: PipelineModule,
    out: Path,
    planned: list[KernelPath],
    *,
    objects: RuntimeObjects,
    kernels: KernelOptions,
    seconds: dict[str, float],
    say: Callable[[str], None],
) -> tuple[list[KernelPath], list[BufferInfo], list[WebGPUBuild]]:
    """Build each planned path's library into ``out``: the paths with the largest
    buffer each binds, the largest tensors of the first, and each build."""
    paths: list[KernelPath] = []
    builds: list[WebGPUBuild] = []
    first_buffers: list[BufferInfo] = []
    for path in planned:
        mod = module.mod
        if path.precision != module.precision:
            with _phase(seconds, f"widen ({path.name})", say):
                mod = widen_to_fp32(mod)
        # The largest tensors at graph level, for the report: attention's score
        # matrices are not among them when the kernels fuse attention, nor
        # dequantized weights (the kernels unpack them).
        if path.library == LIBRARY_FILE:
            graph = mod
            if kernels.fused_attention:
                graph = fuse_attention_pass(min_bytes=kernels.fused_attention_min_bytes)(graph)
            first_buffers = function_buffers(fuse_dequantize(kernels)(graph))
        if module.lora:
            # The merge takes the weights as this path uploads them.
            weight_dtype = "float16" if path.precision == "fp16" else "float32"
            mod = add_lora_functions(mod, weight_dtype)
        phase = "webgpu" if path.library == LIBRARY_FILE else f"webgpu ({path.name})"
        with _phase(seconds, phase, say):
            builds.append(
                build_webgpu_wasm(
                    mod,
                    out / path.library,
                    runtime=objects,
                    kernels=replace(kernels, subgroup_matrix=path.subgroup_matrix),
                    shader_f16="shader-f16" in path.requires,
                )
            )
        paths.append(
            replace(
                path,
                **_bound_bytes(builds[-1], module, widen=path.widen_f16_weights),
                weight_bytes=_uploaded_weight_bytes(module, widen=path.widen_f16_weights),
                workspace_bytes=builds[-1].workspace_bytes,
            )
        )
    return paths, first_buffers, builds


#: The untiled VAE functions a tile function stands in for, by the tile function.
_UNTILED = {TILE_FUNCTION: "vae_decode", ENCODE_TILE_FUNCTION: "vae_encode"}


def _bound_bytes(build: WebGPUBuild, module: PipelineModule, *, widen: bool) -> dict[str, Any]:
    """The largest buffer the library binds (a weight, or a storage its memory
    plan allocates), and the untiled VAE decoder's and encoder's, which are
    optional when the build has their tile functions: a device that cannot bind
    their buffers runs them in tiles."""
    optional = {whole for tile, whole in _UNTILED.items() if tile in module.functions}
    planned = [b for name, b in build.largest_bytes.items() if name not in optional]
    weights = largest_weight_bytes(module.params, widen_f16=widen)
    untiled = {
        f"{whole}_buffer_bytes": build.largest_bytes.get(whole, 0) if whole in optional else None
        for whole in _UNTILED.values()
    }
    return {"max_buffer_bytes": max([weights, *planned]), **untiled}


def _uploaded_weight_bytes(module: PipelineModule, *, widen: bool) -> dict[str, int]:
    """Each component's weights in GPU bytes, float16 ones doubled where ``widen``."""
    return {
        component: int(
            sum(a.nbytes * (2 if widen and a.dtype == np.float16 else 1) for a in arrays)
        )
        for component, arrays in module.params.items()
    }


def _write_tokenizers(out: Path, meta: PipelineMetadata) -> None:
    (out / TOKENIZER_FILE).write_text(meta.tokenizer.tokenizer_json, encoding="utf-8")
    if meta.tokenizer_2 is not None:
        (out / TOKENIZER_2_FILE).write_text(meta.tokenizer_2.tokenizer_json, encoding="utf-8")
