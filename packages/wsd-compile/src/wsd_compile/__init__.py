"""wsd-compile: Apache TVM (Relax) to WebGPU, linked with the tvmjs runtime.

The public API:

- :func:`tvmjs_runtime` builds (once per machine, cached) or finds the tvmjs
  runtime objects every model ``.wasm`` links against.
- :func:`link_wasm` links model object files with them into one ``.wasm``.
- :func:`build_webgpu_wasm` compiles a Relax module for WebGPU and links it.
- :func:`write_runtime_check` writes a small model that checks the whole
  toolchain in a browser (``wsd-web check``).
- :func:`compile_sd15` and :func:`compile_sdxl` compile an SD 1.5-class or
  SDXL diffusers pipeline into a folder of static web files
  (:class:`CompiledPipeline`); :func:`compile_pipeline` does the same for any
  kind of ``BUILDS`` (the compile layer's record of each model kind);
  :func:`build_pipeline_module` (or
  :func:`build_sd15_module` / :func:`build_sdxl_module`) gives the same
  pipeline as one Relax IRModule with its weights, for other targets (tests
  build it for ``llvm``).
"""

from .check import RuntimeCheck, write_runtime_check
from .errors import ToolchainError, WsdCompileError
from .kinds import BUILDS, PRECISIONS, KindBuild
from .link import LinkResult, link_wasm
from .output import OutputExistsError
from .pipeline import CompiledPipeline, compile_pipeline
from .pipeline_module import (
    FunctionInfo,
    PipelineModule,
    TensorInfo,
    build_pipeline_module,
    build_sd15_module,
    build_sdxl_module,
)
from .runtime import RUNTIME_UNITS, RuntimeObjects, tvmjs_runtime
from .sd15 import compile_sd15
from .sdxl import compile_sdxl
from .webgpu import WebGPUBuild, build_webgpu_wasm, webgpu_target

__all__ = [
    "BUILDS",
    "PRECISIONS",
    "RUNTIME_UNITS",
    "CompiledPipeline",
    "FunctionInfo",
    "KindBuild",
    "LinkResult",
    "OutputExistsError",
    "PipelineModule",
    "RuntimeCheck",
    "RuntimeObjects",
    "TensorInfo",
    "ToolchainError",
    "WebGPUBuild",
    "WsdCompileError",
    "build_pipeline_module",
    "build_sd15_module",
    "build_sdxl_module",
    "build_webgpu_wasm",
    "compile_pipeline",
    "compile_sd15",
    "compile_sdxl",
    "link_wasm",
    "tvmjs_runtime",
    "webgpu_target",
    "write_runtime_check",
]
