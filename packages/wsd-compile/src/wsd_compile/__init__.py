"""wsd-compile: Apache TVM (Relax) to WebGPU, linked with the tvmjs runtime.

The public API:

- :func:`tvmjs_runtime` builds (once per machine, cached) or finds the tvmjs
  runtime objects every model ``.wasm`` links against.
- :func:`link_wasm` links model object files with them into one ``.wasm``.
- :func:`build_webgpu_wasm` compiles a Relax module for WebGPU and links it.
- :func:`write_runtime_check` writes a small model that checks the whole
  toolchain in a browser (``wsd-web check``).
"""

from .check import RuntimeCheck, write_runtime_check
from .errors import ToolchainError, WsdCompileError
from .link import LinkResult, link_wasm
from .output import OutputExistsError
from .runtime import RUNTIME_UNITS, RuntimeObjects, tvmjs_runtime
from .webgpu import WebGPUBuild, build_webgpu_wasm, webgpu_target

__all__ = [
    "RUNTIME_UNITS",
    "LinkResult",
    "OutputExistsError",
    "RuntimeCheck",
    "RuntimeObjects",
    "ToolchainError",
    "WebGPUBuild",
    "WsdCompileError",
    "build_webgpu_wasm",
    "link_wasm",
    "tvmjs_runtime",
    "webgpu_target",
    "write_runtime_check",
]
