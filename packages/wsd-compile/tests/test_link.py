"""Linking model libraries with the runtime, and its errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import tvm

from wsd_compile import RuntimeObjects, ToolchainError, build_webgpu_wasm, link_wasm
from wsd_compile.check import build_check_module


def test_a_relax_module_links_into_one_standalone_wasm(
    runtime_objects: RuntimeObjects, tmp_path: Path
) -> None:
    build = build_webgpu_wasm(build_check_module(), tmp_path / "m.wasm", runtime=runtime_objects)
    data = build.wasm.path.read_bytes()
    assert data[:4] == b"\0asm"
    assert build.wasm.nbytes == len(data)
    assert build.wasm.seconds > 0 and build.compile_seconds > 0
    # The compiled kernels travel inside the wasm as WGSL.
    assert b"@compute" in data
    assert not (tmp_path / "m.js").exists()


def test_a_missing_runtime_object_names_the_fix(
    runtime_objects: RuntimeObjects, tmp_path: Path
) -> None:
    gone = replace(
        runtime_objects, objects=(tmp_path / "wasm_runtime.o", *runtime_objects.objects[1:])
    )
    with pytest.raises(ToolchainError, match="wsd-compile runtime"):
        link_wasm([], tmp_path / "m.wasm", runtime=gone)


def test_a_missing_model_object_is_named(runtime_objects: RuntimeObjects, tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match=r"lib0\.o does not exist"):
        link_wasm([tmp_path / "lib0.o"], tmp_path / "m.wasm", runtime=runtime_objects)


def test_link_errors_carry_emcc_output(runtime_objects: RuntimeObjects, tmp_path: Path) -> None:
    bogus = tmp_path / "lib0.o"
    bogus.write_bytes(b"not an object file")
    with pytest.raises(ToolchainError, match=r"emcc failed to link m\.wasm"):
        link_wasm([bogus], tmp_path / "m.wasm", runtime=runtime_objects)


def test_the_target_is_webgpu_with_a_wasm32_host() -> None:
    from wsd_compile import webgpu_target

    target = webgpu_target()
    assert target.kind.name == "webgpu"
    assert "wasm32" in str(target.host.attrs["mtriple"])
    assert isinstance(target, tvm.target.Target)
