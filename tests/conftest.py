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
