"""Building a Relax module for WebGPU and linking it into a tvmjs ``.wasm``."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm

from .buffers import planned_largest, planned_workspace
from .errors import WsdCompileError
from .kernels import DEFAULT_KERNELS, KernelOptions, webgpu_pipeline
from .link import LinkResult, link_wasm
from .runtime import RuntimeObjects

#: WGSL shaders for the GPU; wasm32 code for the host side, run by tvmjs.
WEBGPU_TARGET: dict[str, Any] = {"kind": "webgpu"}
WASM_HOST: dict[str, Any] = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}


def webgpu_target() -> tvm.target.Target:
    """The TVM target of every wsd model library."""
    return tvm.target.Target(WEBGPU_TARGET, host=WASM_HOST)


#: WGSL types browsers reject without extensions: no 64-bit integers in WGSL,
#: and 8-bit storage (torch's bool masks) needs an extension no browser ships.
_UNSUPPORTED_WGSL = re.compile(r"\b(i64|u64|i8|u8|bool)\b(?=\s*>)")


def wgsl_sources(module: tvm.runtime.Module) -> list[str]:
    """The WGSL of every WebGPU module imported (transitively) by ``module``."""
    sources = [module.inspect_source()] if module.kind == "webgpu" else []
    for imported in module.imports:
        sources.extend(wgsl_sources(imported))
    return sources


#: WebGPU's default ``maxComputeInvocationsPerWorkgroup``: what every device grants.
MAX_WORKGROUP_INVOCATIONS = 256
_WORKGROUP_SIZE = re.compile(r"@workgroup_size\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?(?:,\s*(\d+)\s*)?\)")
_KERNEL_NAME = re.compile(r"\bfn\s+(\w+)")


def check_wgsl(sources: Sequence[str]) -> None:
    """Raise if a shader stores a type that WebGPU in browsers rejects, or has
    more invocations per workgroup than WebGPU's default limit."""
    found = sorted({m.group(1) for src in sources for m in _UNSUPPORTED_WGSL.finditer(src)})
    if found:
        raise WsdCompileError(
            f"the WebGPU shaders use {', '.join(found)} storage, which browsers reject; "
            "keep 64-bit integers and bool tensors out of the GPU graph "
            "(timesteps as float32, int32 token ids, classic attention)"
        )
    for src in sources:
        for size in _WORKGROUP_SIZE.finditer(src):
            invocations = 1
            for dim in size.groups():
                invocations *= int(dim or 1)
            if invocations > MAX_WORKGROUP_INVOCATIONS:
                name = _KERNEL_NAME.search(src, size.end())
                raise WsdCompileError(
                    f"the WebGPU kernel {name.group(1) if name else '?'} has {invocations} "
                    f"invocations per workgroup, over the {MAX_WORKGROUP_INVOCATIONS} every "
                    "device allows: schedule it with smaller workgroups"
                )


#: WGSL's directive for half precision: a shader with it needs ``shader-f16``.
_F16_DIRECTIVE = re.compile(r"^\s*enable\s+f16\s*;", re.MULTILINE)


def check_no_f16(sources: Sequence[str]) -> None:
    """Raise if a shader needs ``shader-f16`` (for a kernel path that must run without it)."""
    if any(_F16_DIRECTIVE.search(src) for src in sources):
        raise WsdCompileError(
            "a shader of the fp32 kernel path uses f16, which devices without shader-f16 "
            "cannot compile; build with --no-fp32-fallback, or report the op that kept float16"
        )


@dataclass(frozen=True)
class WebGPUBuild:
    """A model ``.wasm``, the time each phase took, the storage each function
    allocates for its intermediates (:func:`~wsd_compile.buffers.planned_workspace`)
    and the largest of it (:func:`~wsd_compile.buffers.planned_largest`)."""

    wasm: LinkResult
    compile_seconds: float
    workspace_bytes: dict[str, int] = field(default_factory=dict)
    largest_bytes: dict[str, int] = field(default_factory=dict)


def build_webgpu_wasm(
    mod: tvm.IRModule,
    output: str | Path,
    *,
    runtime: RuntimeObjects | None = None,
    kernels: KernelOptions = DEFAULT_KERNELS,
    shader_f16: bool = True,
) -> WebGPUBuild:
    """Compile ``mod`` (Relax, static shapes) for WebGPU and link it into ``output``.

    wsd's kernels (:mod:`wsd_compile.kernels`: group norm, implicit-GEMM
    convolutions, matmul tiles, as ``kernels`` selects) and TVM's default GPU
    schedules (dlight) for the rest are applied. Shaders that browsers
    would reject (64-bit or 8-bit storage) fail here, before linking, and so
    do shaders with f16 when ``shader_f16`` is false (a path for devices
    without it). The host code is emitted as wasm object files, which link
    with emcc's LLVM whatever LLVM TVM has.
    """
    start = time.perf_counter()
    try:
        target = webgpu_target()
        lowered = webgpu_pipeline(target, kernels)(mod)
        planned, largest = planned_workspace(lowered), planned_largest(lowered)
        executable = tvm.compile(lowered, target=target, relax_pipeline=None)
    except tvm.error.InternalError as e:
        if "do not support i64" in str(e):
            check_wgsl(["array<i64>"])
        raise
    compile_seconds = time.perf_counter() - start
    sources = wgsl_sources(executable.mod)
    check_wgsl(sources)
    if not shader_f16:
        check_no_f16(sources)
    results: list[LinkResult] = []

    def fcompile(file_name: str, files: Sequence[str], **_: Any) -> None:
        results.append(link_wasm(files, file_name, runtime=runtime))

    fcompile.object_format = "o"  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="wsd-export-") as workspace:
        executable.export_library(str(output), fcompile=fcompile, workspace_dir=workspace)
    return WebGPUBuild(results[0], compile_seconds, planned, largest)
