"""Fixtures shared by the cross-package tests: real builds, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsd_compile import RuntimeCheck, write_runtime_check


@pytest.fixture(scope="session")
def runtime_check(tmp_path_factory: pytest.TempPathFactory) -> RuntimeCheck:
    """The runtime-check model compiled for WebGPU and linked (a real TVM build and emcc link)."""
    return write_runtime_check(tmp_path_factory.mktemp("runtime-check"))


@pytest.fixture(scope="session")
def check_dir(runtime_check: RuntimeCheck) -> Path:
    return runtime_check.directory


def _source_key() -> str:
    """A hash of everything a compiled build depends on: the code and the tool versions."""
    import hashlib
    import importlib.metadata as md

    import wsd_artifacts
    import wsd_capture
    import wsd_compile

    digest = hashlib.sha256()
    for package in (wsd_artifacts, wsd_capture, wsd_compile):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".json", ".h"}:
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(path.read_bytes())
    for dist in ("apache-tvm", "torch", "diffusers", "transformers"):
        digest.update(f"{dist}={md.version(dist)}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_sd15_build() -> Path:
    """``tiny-sd15`` compiled for WebGPU at fp32, cached outside the repo by source hash.

    A fresh machine compiles it once (about a minute on 2 cores); a cached
    build is used only if ``verify`` finds every file intact.
    """
    from wsd_artifacts import verify
    from wsd_compile import compile_sd15
    from wsd_compile.cache import cache_root

    out = cache_root() / "builds" / f"tiny-sd15-fp32-{_source_key()}"
    if out.exists() and not verify(out).ok:
        import shutil

        shutil.rmtree(out)
    if not out.exists():
        compile_sd15(preset="tiny-sd15", out_dir=out)
    return out
