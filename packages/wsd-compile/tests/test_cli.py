"""The `wsd-compile` command line: JSON on success, one line on stderr on failure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from wsd_compile import RuntimeObjects, ToolchainError, write_runtime_check
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
    assert [f["name"] for f in index["functions"]] == [
        "matmul_silu",
        "conv_group_norm",
        "attention",
        "attention_heads",
    ]
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


def test_an_existing_output_directory_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["check", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists; remove it or choose another" in err[0]
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_a_failed_build_leaves_no_output(runtime_objects: RuntimeObjects, tmp_path: Path) -> None:
    broken = replace(runtime_objects, objects=(tmp_path / "gone.o", *runtime_objects.objects[1:]))
    with pytest.raises(ToolchainError):
        write_runtime_check(tmp_path / "out" / "c", runtime=broken)
    assert list(tmp_path.iterdir()) == []  # nor the parent made for the output
