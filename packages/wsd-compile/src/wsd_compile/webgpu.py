"""Building a Relax module for WebGPU and linking it into a tvmjs ``.wasm``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm

from .link import LinkResult, link_wasm
from .runtime import RuntimeObjects

#: WGSL shaders for the GPU; wasm32 code for the host side, run by tvmjs.
WEBGPU_TARGET: dict[str, Any] = {"kind": "webgpu"}
WASM_HOST: dict[str, Any] = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}


def webgpu_target() -> tvm.target.Target:
    """The TVM target of every wsd model library."""
    return tvm.target.Target(WEBGPU_TARGET, host=WASM_HOST)


@dataclass(frozen=True)
class WebGPUBuild:
    """A model ``.wasm`` and the time each phase took."""

    wasm: LinkResult
    compile_seconds: float


def build_webgpu_wasm(
    mod: tvm.IRModule,
    output: str | Path,
    *,
    runtime: RuntimeObjects | None = None,
) -> WebGPUBuild:
    """Compile ``mod`` (Relax, static shapes) for WebGPU and link it into ``output``.

    TVM's default GPU schedules (dlight) are applied. The host code is emitted
    as wasm object files, which link with emcc's LLVM whatever LLVM TVM has.
    """
    start = time.perf_counter()
    executable = tvm.compile(mod, target=webgpu_target())
    compile_seconds = time.perf_counter() - start
    results: list[LinkResult] = []

    def fcompile(file_name: str, files: Sequence[str], **_: Any) -> None:
        results.append(link_wasm(files, file_name, runtime=runtime))

    fcompile.object_format = "o"  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="wsd-export-") as workspace:
        executable.export_library(str(output), fcompile=fcompile, workspace_dir=workspace)
    return WebGPUBuild(results[0], compile_seconds)
