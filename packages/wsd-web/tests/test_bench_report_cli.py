"""``wsd-web report``: result files in; the result document, its charts and the page out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench.charts import chart_svg
from wsd_web.bench.page import render_page
from wsd_web.bench.results import combine
from wsd_web.cli import main

ResultFactory = Callable[..., dict[str, Any]]


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def inputs(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, tmp_path: Path
) -> dict[str, Path]:
    src = tmp_path / "results"
    src.mkdir()
    return {
        "on": _write(src / "webgpu.json", webgpu_result(True)),
        "off": _write(src / "webgpu-nr.json", webgpu_result(False)),
        "torch": _write(src / "pytorch.json", [pytorch_result("fp32"), pytorch_result("fp16")]),
    }


def _report(inputs: dict[str, Path], out: Path, name: str = "sd15-512") -> list[str]:
    return [
        "report",
        "--webgpu",
        str(inputs["on"]),
        str(inputs["off"]),
        "--pytorch",
        str(inputs["torch"]),
        "--command",
        "wsd-web bench build/sd15-fp32",
        "--machine",
        "1x H200",
        "--name",
        name,
        "--out-dir",
        str(out),
    ]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_report_writes_the_result_its_charts_and_the_page(
    webgpu_result: ResultFactory,
    pytorch_result: ResultFactory,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = tmp_path / "docs"
    assert main(_report(inputs, docs)) == 0
    assert sorted(_snapshot(docs)) == [
        "benchmarks.md",
        "benchmarks/sd15-512-kernels.svg",
        "benchmarks/sd15-512.json",
        "benchmarks/sd15-512.svg",
    ]
    assert capsys.readouterr().out.split() == [
        str(docs / "benchmarks/sd15-512.json"),
        str(docs / "benchmarks/sd15-512.svg"),
        str(docs / "benchmarks/sd15-512-kernels.svg"),
        str(docs / "benchmarks.md"),
    ]
    doc = json.loads((docs / "benchmarks/sd15-512.json").read_text())
    expected = combine(
        [webgpu_result(True), webgpu_result(False)],
        [pytorch_result("fp32"), pytorch_result("fp16")],
        command="wsd-web bench build/sd15-fp32",
        machine="1x H200",
    )
    assert doc == {**expected, "date": doc["date"]}
    assert (docs / "benchmarks/sd15-512.svg").read_text() == chart_svg(doc)
    assert (docs / "benchmarks.md").read_text() == render_page([{**doc, "name": "sd15-512"}])


def test_report_renders_the_page_from_every_result_sorted_by_name(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    assert main(_report(inputs, docs, "sd15-768")) == 0
    assert main(_report(inputs, docs, "sd15-512")) == 0
    page = (docs / "benchmarks.md").read_text()
    assert page.index("benchmarks/sd15-512.svg") < page.index("benchmarks/sd15-768.svg")
    assert page.count("## SD 1.5, 512x512, 20 steps") == 2


def test_report_render_only_rewrites_the_page_and_charts_from_the_json(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    assert main(_report(inputs, docs)) == 0
    result = docs / "benchmarks/sd15-512.json"
    doc = json.loads(result.read_text())
    doc["machine"] = "the lab's H200"
    result.write_text(json.dumps(doc))
    (docs / "benchmarks/sd15-512.svg").unlink()
    capsys.readouterr()
    assert main(["report", "--render-only", "--out-dir", str(docs)]) == 0
    assert str(docs / "benchmarks/sd15-512.json") not in capsys.readouterr().out
    assert "- Machine: the lab's H200; measured" in (docs / "benchmarks.md").read_text()
    assert (docs / "benchmarks/sd15-512.svg").read_text() == chart_svg(doc)
    assert json.loads(result.read_text()) == doc
    assert not [p for p in docs.rglob(".*")]


def test_report_removes_the_kernels_chart_of_a_result_without_kernels(
    webgpu_result: ResultFactory, inputs: dict[str, Path], tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    assert main(_report(inputs, docs)) == 0
    _write(inputs["on"], webgpu_result(True, kernels=[]))
    assert main(_report(inputs, docs)) == 0
    assert not (docs / "benchmarks/sd15-512-kernels.svg").exists()
    assert "sd15-512-kernels.svg" not in (docs / "benchmarks.md").read_text()


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing", "webgpu.json: no such file"),
        (
            "not-json",
            "webgpu.json: not valid JSON: Expecting property name enclosed in double quotes",
        ),
        ("mismatch", "pytorch.json[1]: height is 768 but"),
        ("no-robustness-on", "no WebGPU result with robustness on in"),
        ("swapped", "pytorch.json[0]: runtime is \"pytorch\", expected 'webgpu'"),
        ("bad-name", "name '../x': use letters, digits"),
    ],
)
def test_report_of_bad_input_is_one_line_and_writes_nothing(
    pytorch_result: ResultFactory,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    problem: str,
    message: str,
) -> None:
    docs = tmp_path / "docs"
    args = _report(inputs, docs)
    if problem == "missing":
        inputs["on"].unlink()
    elif problem == "not-json":
        inputs["on"].write_text("{oops")
    elif problem == "mismatch":
        _write(inputs["torch"], [pytorch_result("fp32"), pytorch_result("fp16", height=768)])
    elif problem == "no-robustness-on":
        args = [a for a in args if a != str(inputs["on"])]
    elif problem == "swapped":
        args = _report({**inputs, "on": inputs["torch"]}, docs)
    else:
        args = _report(inputs, docs, "../x")
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("wsd-web: ")
    assert not docs.exists()


def test_report_leaves_committed_results_alone_on_bad_input(
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    webgpu_result: ResultFactory,
) -> None:
    docs = tmp_path / "docs"
    assert main(_report(inputs, docs)) == 0
    before = _snapshot(docs)
    _write(inputs["off"], webgpu_result(False, steps=50))
    assert main(_report(inputs, docs)) == 1
    assert "webgpu-nr.json: steps is 50 but" in capsys.readouterr().err
    assert _snapshot(docs) == before


def test_report_refuses_a_broken_committed_result_naming_it(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    (docs / "benchmarks").mkdir(parents=True)
    broken = docs / "benchmarks/old.json"
    broken.write_text('{"version": 1}')
    assert main(_report(inputs, docs)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{broken}: command must be a string" in err[0]
    assert [p.name for p in (docs / "benchmarks").iterdir()] == ["old.json"]
    assert main(["report", "--render-only", "--out-dir", str(docs)]) == 1
    assert str(broken) in capsys.readouterr().err


def test_report_render_only_needs_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--render-only", "--out-dir", str(tmp_path / "docs")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no benchmark results (*.json) to render" in err[0]
    assert not (tmp_path / "docs").exists()


def test_report_arguments_are_all_or_render_only(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = str(tmp_path / "docs")
    assert main(["report", "--render-only", "--name", "x", "--out-dir", docs]) == 2
    assert "--render-only takes no --name" in capsys.readouterr().err
    assert main(["report", "--webgpu", str(inputs["on"]), "--out-dir", docs]) == 2
    err = capsys.readouterr().err
    assert "report needs --pytorch, --command, --machine, --name (or --render-only)" in err
    assert not (tmp_path / "docs").exists()
