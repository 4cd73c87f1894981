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
COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "benchmarks"


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
        ("no-robustness-on", "no WebGPU fp32 (fp32 kernels) result with robustness on in"),
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


def _fp16(webgpu_result: ResultFactory, robustness: bool, **changes: Any) -> dict[str, Any]:
    """An fp16 build's ``wsd-web bench`` result: every stage 0.6 of the fp32 build's."""
    fp32 = webgpu_result(robustness)
    stages = {k: {**v, "median": v["median"] * 0.6} for k, v in fp32["stages"].items()}
    fp16 = {
        "precision": "fp16",
        "build_id": "fp16build",
        "features": ["shader-f16", "timestamp-query"],
        "dawn_toggles": ["enable-dawn-features=vulkan_enable_f16_on_nvidia"],
        "stages": stages,
    }
    return webgpu_result(robustness, **{**fp16, **changes})


def _two_builds(
    webgpu_result: ResultFactory, src: Path, out: Path, **fp16_changes: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """``report`` arguments with ``--webgpu`` once per build (each file a list, as
    ``wsd-web bench --json`` writes it), and the WebGPU results they hold."""
    fp32 = [webgpu_result(True), webgpu_result(False)]
    fp16 = [_fp16(webgpu_result, r, **fp16_changes) for r in (True, False)]
    args = [
        "report",
        "--webgpu",
        str(_write(src / "webgpu-fp32.json", fp32)),
        "--webgpu",
        str(_write(src / "webgpu-fp16.json", fp16)),
        "--pytorch",
        str(src / "pytorch.json"),
        "--command",
        "bash scripts/bench_gpu.sh sd15 sd15-512 OUT 20 BUILD BUILD",
        "--machine",
        "1x H200",
        "--name",
        "sd15-512",
        "--out-dir",
        str(out),
    ]
    return args, fp32 + fp16


def test_report_takes_webgpu_once_per_build(
    webgpu_result: ResultFactory,
    pytorch_result: ResultFactory,
    inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    args, web = _two_builds(webgpu_result, inputs["torch"].parent, docs)
    assert main(args) == 0
    doc = json.loads((docs / "benchmarks/sd15-512.json").read_text())
    torch = [pytorch_result("fp32"), pytorch_result("fp16")]
    expected = combine(web, torch, command=args[8], machine="1x H200")
    assert doc == {**expected, "date": doc["date"]}
    runs = doc["webgpu_runs"]
    assert [(r["precision"], r["kernel_path"]) for r in runs] == [
        ("fp32", "fp32"),
        ("fp16", "shader-f16"),
    ]
    assert runs[1]["features"] == ["shader-f16", "timestamp-query"]
    assert runs[1]["dawn_toggles"] == ["enable-dawn-features=vulkan_enable_f16_on_nvidia"]
    for run, on in zip(runs, (web[0], web[2]), strict=True):
        for stage in ("unet_step", "generation", "vae_decode"):
            for ratio, baseline in zip(("fp32", "fp16"), torch, strict=True):
                assert run[f"ratio_{stage}_vs_pytorch_{ratio}"] == pytest.approx(
                    on["stages"][f"{stage}_ms"]["median"]
                    / baseline["stages"][f"{stage}_ms"]["median"]
                )
    page = (docs / "benchmarks.md").read_text()
    assert "## SD 1.5, 512x512, 20 steps, WebGPU fp32 and fp16" in page
    assert "| Median | WebGPU fp32 | WebGPU fp32 (no robustness) | WebGPU fp16 |" in page
    assert (docs / "benchmarks/sd15-512.svg").read_text() == chart_svg(doc)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "sdxl"}, "webgpu-fp16.json[0]: kind is 'sdxl' but"),
        ({"height": 768, "width": 768}, "webgpu-fp16.json[0]: height is 768 but"),
        ({"adapter": "another GPU"}, "webgpu-fp16.json[0]: adapter is 'another GPU' but"),
        ({"precision": "fp32"}, "webgpu-fp16.json[0]: build_id is 'fp16build' but"),
    ],
)
def test_report_of_builds_that_do_not_go_together_is_one_line_and_writes_nothing(
    webgpu_result: ResultFactory,
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    message: str,
) -> None:
    docs = tmp_path / "docs"
    args, _ = _two_builds(webgpu_result, inputs["torch"].parent, docs, **changes)
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("wsd-web: ")
    assert not docs.exists()


def test_report_renders_committed_version_1_results_and_leaves_other_json_alone(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    """The committed single-build results (version 1) render beside a new one, as they
    did; a JSON file that is no result document (gpu-parity.json) is not one to render."""
    docs = tmp_path / "docs"
    (docs / "benchmarks").mkdir(parents=True)
    for name in ("sd15-512.json", "sdxl-1024.json", "gpu-parity.json"):
        (docs / "benchmarks" / name).write_bytes((COMMITTED / name).read_bytes())
    assert main(_report(inputs, docs, "sd15-new")) == 0
    for name in ("sd15-512", "sdxl-1024"):
        for chart in (f"{name}.svg", f"{name}-kernels.svg"):
            assert (docs / "benchmarks" / chart).read_text() == (COMMITTED / chart).read_text()
    assert not (docs / "benchmarks/gpu-parity.svg").exists()
    page = (docs / "benchmarks.md").read_text()
    assert page.count("## SD 1.5, 512x512, 20 steps") == 2
    assert "## SDXL, 1024x1024, 20 steps" in page
    assert json.loads((docs / "benchmarks/sd15-512.json").read_bytes()) == json.loads(
        (COMMITTED / "sd15-512.json").read_bytes()
    )
    assert main(["report", "--render-only", "--out-dir", str(docs)]) == 0
