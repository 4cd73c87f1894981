"""Building, caching and locating the tvmjs runtime objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsd_compile import RUNTIME_UNITS, ToolchainError, tvmjs_runtime
from wsd_compile.runtime import assemble_source_tree, runtime_cache_key

WASM_MAGIC = b"\0asm"

MISSING_FROM_WHEELS = (
    "src/support/bytes_io.h",
    "src/support/arena.h",
    "src/support/ring_buffer.h",
    "src/support/utils.h",
    "src/support/base64.h",
    "include/tvm/support/io.h",
    "include/tvm/support/serializer.h",
    "include/tvm/support/cuda/nvtx.h",
    "3rdparty/compiler-rt/builtin_fp16.h",
)


def test_objects_are_wasm_objects_in_link_order(runtime_objects: object) -> None:
    rt = tvmjs_runtime()
    assert [p.stem for p in rt.objects] == list(RUNTIME_UNITS)
    for path in rt.objects:
        assert path.read_bytes()[:4] == WASM_MAGIC, f"{path} is not a wasm object (bitcode?)"


def test_second_call_comes_from_the_cache_outside_the_repo(runtime_objects: object) -> None:
    first, again = tvmjs_runtime(), tvmjs_runtime()
    assert again.origin == "cache"
    assert again.objects == first.objects
    assert again.build_seconds > 0
    repo = Path(__file__).resolve().parents[3]
    assert not again.objects[0].is_relative_to(repo)


def test_source_tree_has_the_layout_the_makefile_expects(tmp_path: Path) -> None:
    root = assemble_source_tree(tmp_path / "tvm")
    for unit in RUNTIME_UNITS:
        assert (root / "web" / "emcc" / f"{unit}.cc").is_file()
    assert (root / "3rdparty" / "tvm-ffi" / "include" / "tvm" / "ffi" / "any.h").is_file()
    assert (
        root / "3rdparty" / "tvm-ffi" / "3rdparty" / "dlpack" / "include" / "dlpack" / "dlpack.h"
    ).is_file()
    for header in MISSING_FROM_WHEELS:
        assert (root / header).is_file(), header


def test_cache_key_names_the_tvm_version() -> None:
    assert runtime_cache_key("emcc").startswith("tvm0.27")


def test_tvm_home_objects_are_used_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "web" / "dist" / "wasm"
    dist.mkdir(parents=True)
    for unit in RUNTIME_UNITS:
        (dist / f"{unit}.bc").write_bytes(b"BC")
    monkeypatch.setenv("TVM_HOME", str(tmp_path))
    rt = tvmjs_runtime()
    assert rt.origin == "TVM_HOME"
    assert rt.objects == tuple(dist / f"{u}.bc" for u in RUNTIME_UNITS)


def test_tvm_home_without_a_web_build_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TVM_HOME", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"make -C .*web"):
        tvmjs_runtime()


def test_missing_emcc_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TVM_HOME", raising=False)
    with pytest.raises(ToolchainError, match="apt-get install emscripten"):
        tvmjs_runtime(emcc="emcc-that-does-not-exist")


def test_builds_from_the_wheel_sources_with_wsds_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full emcc build into an empty cache (about a minute on 2 cores)."""
    monkeypatch.delenv("TVM_HOME", raising=False)
    monkeypatch.setenv("WSD_CACHE_DIR", str(tmp_path))
    built = tvmjs_runtime()
    assert built.origin == "built"
    for path in built.objects:
        assert path.is_relative_to(tmp_path) and path.read_bytes()[:4] == WASM_MAGIC
    leftovers = list((tmp_path / "tvmjs-runtime").glob(".build-*"))
    assert not leftovers, "temporary build dir left behind"
    assert tvmjs_runtime().origin == "cache"
