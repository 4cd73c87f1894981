"""``compile_sd15``: an SD 1.5-class diffusers pipeline to a folder of static web files."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .kernels import DEFAULT_KERNELS, KernelOptions
from .pipeline import CompiledPipeline, compile_pipeline
from .runtime import RuntimeObjects

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline


def compile_sd15(
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
    """Compile an SD 1.5-class pipeline into ``out_dir``, ready for ``wsd-web serve``.

    ``source`` is a diffusers directory (or a hub id when the network allows
    it), or a pipeline already captured with ``wsd_capture.capture_sd15``;
    alternatively ``preset`` names a built-in model (``"tiny-sd15"``).
    ``precision`` is ``"fp32"`` or ``"fp16"``. ``height`` and ``width``
    default to the model's native size (the UNet's ``sample_size`` times the
    VAE's downsampling factor), as diffusers does; others must be positive
    multiples of what the UNet supports (64 for SD 1.5), at most twice the
    native size. ``vae`` replaces the pipeline's VAE with another diffusers
    ``AutoencoderKL`` directory (e.g. a fine-tuned decoder) when capturing.

    Bad input raises :class:`WsdCompileError` (:class:`OutputExistsError` for
    a taken ``out_dir``) with one line that names the problem, before
    anything is loaded where it can: a model directory that does not exist,
    lacks a component, config, tokenizer or weights file, holds a truncated or
    garbled safetensors file, or is of another pipeline class; a size the
    model cannot take.

    The directory gets ``model.wasm`` (every function, WebGPU shaders and
    wasm host code), the weights as a tvmjs tensor cache (raw, sharded,
    content-named), ``tokenizer.json`` and ``manifest.json``, which
    describes them all with sizes and sha384 hashes. It is written beside
    ``out_dir`` and renamed into place at the end, so a failure leaves
    nothing behind; an ``out_dir`` that already holds files is refused.
    ``runtime`` defaults to the cached tvmjs runtime objects (built on first
    use). ``log`` receives one line per phase. ``kernels`` picks the GPU
    kernels (:mod:`wsd_compile.kernels`; the default is the fastest measured).
    An fp16 build also holds the fp32 kernel path (``model-fp32.wasm``, for
    devices without ``shader-f16``) unless ``fp32_fallback`` is false, and
    with ``subgroup_matrix`` a library with its matmuls on tensor cores.
    ``quantize`` (``"int8"``, ``"int4"``; ``"none"`` by default) stores the
    UNet's and text encoders' linear and convolution weights as packed
    integers and scales, dequantized in the kernels (:mod:`wsd_compile.quantize`).
    """
    return compile_pipeline(
        "sd15",
        source,
        out_dir=out_dir,
        preset=preset,
        precision=precision,
        height=height,
        width=width,
        vae=vae,
        runtime=runtime,
        log=log,
        kernels=kernels,
        fp32_fallback=fp32_fallback,
        subgroup_matrix=subgroup_matrix,
        quantize=quantize,
    )
