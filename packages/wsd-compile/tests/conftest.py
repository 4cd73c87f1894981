"""Fixtures of the wsd-compile tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax

from wsd_compile import PipelineModule, RuntimeObjects, tvmjs_runtime
from wsd_compile.kernels import KernelOptions, webgpu_pipeline
from wsd_compile.webgpu import webgpu_target


@pytest.fixture(scope="session")
def runtime_objects() -> RuntimeObjects:
    """The tvmjs runtime objects (built once per machine, ~2 min on 2 cores)."""
    return tvmjs_runtime()


class CpuModule:
    """A PipelineModule built for llvm, callable by function name; outputs as a list."""

    def __init__(self, module: PipelineModule) -> None:
        self.module = module
        self.vm = relax.VirtualMachine(tvm.compile(module.mod, target="llvm"), tvm.cpu())

    def __call__(self, name: str, *args: np.ndarray) -> list[np.ndarray]:
        inputs: list[Any] = [tvm.runtime.tensor(a) for a in args]
        component = self.module.functions[name].params
        if component is not None:
            inputs.append([tvm.runtime.tensor(p) for p in self.module.params[component]])
        out = self.vm[name](*inputs)
        if isinstance(out, tvm.runtime.Tensor):
            return [out.numpy()]
        return [t.numpy() for t in out]


@pytest.fixture(scope="session")
def cpu_build() -> Callable[[PipelineModule], CpuModule]:
    """Builds a PipelineModule for llvm: ``cpu_build(module)(name, *arrays)``."""
    return CpuModule


@pytest.fixture
def stderr_line(capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """The one line a failing command wrote on stderr (asserts there is exactly one)."""

    def read() -> str:
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    return read


def _called_kernels(lowered: tvm.IRModule) -> list[str]:
    main = lowered["main"].script()
    return sorted(
        g.name_hint
        for g, f in lowered.functions_items()
        if isinstance(f, tvm.tirx.PrimFunc) and re.search(rf"\b{g.name_hint}\(", main)
    )


@pytest.fixture(scope="session")
def called_kernels() -> Callable[[tvm.IRModule], list[str]]:
    """The kernels that ``main`` of a lowered module calls, by name, sorted: a
    PrimFunc that ``main`` no longer calls (a reshape that became a view) is none."""
    return _called_kernels


def _lowered(mod: tvm.IRModule, options: KernelOptions) -> tvm.IRModule:
    return webgpu_pipeline(webgpu_target(), options)(mod)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def lowered() -> Callable[[tvm.IRModule, KernelOptions], tvm.IRModule]:
    """``lowered(mod, options)``: ``mod`` lowered for WebGPU with the kernel
    ``options``, ready for ``called_kernels``."""
    return _lowered
