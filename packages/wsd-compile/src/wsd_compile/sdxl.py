"""``compile_sdxl``: an SDXL diffusers pipeline to a folder of static web files."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .kernels import DEFAULT_KERNELS, KernelOptions
from .pipeline import CompiledPipeline, compile_pipeline
from .runtime import RuntimeObjects

if TYPE_CHECKING:
    from wsd_capture import CapturedPipeline


def compile_sdxl(
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
    """Compile an SDXL pipeline into ``out_dir``, ready for ``wsd-web serve``.

    Example::

        from wsd_compile import compile_sdxl

        built = compile_sdxl("models/my-sdxl-finetune", out_dir="web/my-sdxl", precision="fp16")
        print(built.out_dir, built.wasm_bytes, built.weight_bytes, built.seconds)

    ``source`` is a diffusers ``StableDiffusionXLPipeline`` directory (as
    ``save_pretrained`` writes it; a hub id when the network allows it), or a
    pipeline already captured with ``wsd_capture.capture_sdxl``;
    alternatively ``preset`` names a built-in model (``"tiny-sdxl"``).

    ``precision`` is ``"fp32"`` or ``"fp16"``. In an fp16 build the VAE still
    runs in fp32 when its config says ``force_upcast`` (SDXL's VAE overflows in
    fp16, and diffusers upcasts it too); pass ``vae=`` a directory of an
    fp16-safe VAE (config ``force_upcast: false``) to decode in fp16.
    ``quantize`` (``"int8"``, ``"int4"``; ``"none"`` by default) stores the
    UNet's and both text encoders' linear and convolution weights as packed
    integers and scales, dequantized in the kernels (:mod:`wsd_compile.quantize`).

    ``height`` and ``width`` default to the model's native size (1024 x 1024
    for SDXL base), as diffusers does; they must be positive multiples of
    what the UNet supports (32 for SDXL's three levels and factor-8 VAE), at
    most twice the native size, otherwise :class:`WsdCompileError` says which
    sizes work. A model directory with a missing or damaged file, or of
    another pipeline class, raises :class:`WsdCompileError` naming it before
    anything is loaded.

    The directory gets ``model.wasm`` (every function: both text encoders,
    the UNet with its added conditioning, the VAE decoder and the glue, as
    WebGPU shaders and wasm host code), the weights as a tvmjs tensor cache,
    ``tokenizer.json`` and ``tokenizer_2.json``, and ``manifest.json``
    (``kind: "sdxl"``, the conditioning rules, every file with its sha384).
    The scheduler is the pipeline's (Euler for SDXL base); the page can switch
    to any scheduler of its registry, e.g. Euler ancestral. The directory is
    written beside ``out_dir`` and renamed into place at the end, so a failure
    leaves nothing behind; an ``out_dir`` that already holds files is refused.
    ``runtime`` defaults to the cached tvmjs runtime objects (built on first
    use). ``log`` receives one line per phase. An fp16 build also holds the
    fp32 kernel path (``model-fp32.wasm``, for devices without ``shader-f16``)
    unless ``fp32_fallback`` is false, and with ``subgroup_matrix`` a library
    with its matmuls on tensor cores.

    Returns a :class:`CompiledPipeline`: the directory, its manifest, the
    ``.wasm`` and weight sizes in bytes, and the seconds each phase took.
    """
    return compile_pipeline(
        "sdxl",
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
