"""The `wsd-compile` command line: JSON on success, one line on stderr on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wsd_compile import RuntimeObjects
from wsd_compile.cli import main


def test_runtime_prints_the_objects(
    runtime_objects: RuntimeObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runtime"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["origin"] == "cache"
    assert report["objects"] == [str(p) for p in runtime_objects.objects]


def test_check_writes_a_runnable_directory(
    runtime_objects: RuntimeObjects, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--out", str(tmp_path / "c")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["wasm_bytes"] == (tmp_path / "c" / "check.wasm").stat().st_size
    index = json.loads((tmp_path / "c" / "check.json").read_text())
    assert [f["name"] for f in index["functions"]] == ["matmul_silu", "conv_group_norm"]
    assert (tmp_path / "c" / "tensor-cache.json").is_file()


def test_a_missing_toolchain_is_one_line_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TVM_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["runtime"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("wsd-compile: ") and "apt-get install emscripten" in err[0]
