"""``--offload``: parsed by ``wsd-web render`` and ``bench``, passed to the page's and the
Node runner's generations; each stage's peak GPU bytes reported back (``peak_bytes``,
``stagePeakBytes``) and shown by the bench table and the benchmarks page (no browser, no
GPU: the page and the runner are stand-ins)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench import runner
from wsd_web.bench.page import table
from wsd_web.bench.results import BenchReportError, check_document, combine, webgpu_runs
from wsd_web.cli import build_parser, main
from wsd_web.render import RenderError, Rendering, render, render_many, write_rendering

ResultFactory = Callable[..., dict[str, Any]]
#: ``stand_in_page`` (conftest.py): the page's ``window.wsd``, generations returning these fields.
StandIn = Callable[[dict[str, Any]], Any]
#: ``stand_in_runner`` (conftest.py): the Node bench runner, reporting ``report(options)``.
RunnerStandIn = Callable[[Callable[[dict[str, Any]], dict[str, Any]]], list[dict[str, Any]]]
RENDER = ["render", "DIR", "--prompt", "x", "--out", "a.png"]
PEAKS = {"textEncoder": 3 * 2**20, "denoise": 2**30, "decode": 5 * 2**20}


@pytest.mark.parametrize("command", [RENDER, ["bench", "DIR"]])
def test_offload_is_off_unless_given(command: list[str]) -> None:
    assert build_parser().parse_args(command).offload is False
    assert build_parser().parse_args([*command, "--offload"]).offload is True


@pytest.mark.parametrize("command", [RENDER, ["bench", "DIR"]])
def test_offload_takes_no_value(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*command, "--offload=yes"])
    assert exit.value.code == 2
    assert "argument --offload: ignored explicit argument 'yes'" in capsys.readouterr().err


def test_render_refuses_an_offload_that_is_not_a_bool(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="offload 'yes': give True or False"):
        render(tmp_path, prompt="x", offload="yes")  # type: ignore[arg-type]


@pytest.fixture
def page(stand_in_page: StandIn) -> Any:
    """The stand-in page; each generation reports the stage peaks ``PEAKS``."""
    return stand_in_page({"peakBytes": PEAKS})


def test_render_passes_offload_and_keeps_the_stage_peaks(page: Any, tmp_path: Path) -> None:
    rendering = render(tmp_path, prompt="x", offload=True)
    assert page.generated[0]["offload"] is True
    assert rendering.peak_bytes == {
        "text_encoder": 3 * 2**20,
        "denoise": 2**30,
        "decode": 5 * 2**20,
    }
    render(tmp_path, prompt="x")
    assert page.generated[1]["offload"] is False


def test_render_many_passes_each_runs_offload(page: Any, tmp_path: Path) -> None:
    render_many(tmp_path, [{"prompt": "a", "offload": True}, {"prompt": "b"}])
    assert [g["offload"] for g in page.generated] == [True, False]


def test_a_page_without_peaks_gives_none(stand_in_page: StandIn, tmp_path: Path) -> None:
    stand_in_page({})
    assert render(tmp_path, prompt="x").peak_bytes is None


def test_cli_render_passes_offload_and_writes_the_peaks(
    page: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.png"
    assert main(["render", str(tmp_path), "--prompt", "x", "--offload", "--out", str(out)]) == 0
    assert page.generated[0]["offload"] is True
    printed = json.loads(capsys.readouterr().out)
    assert printed["peak_bytes"]["denoise"] == 2**30
    assert json.loads(out.with_suffix(".json").read_text())["peak_bytes"] == printed["peak_bytes"]


def test_the_rendering_record_has_null_peaks_when_unknown(tmp_path: Path) -> None:
    old = Rendering(rgba=bytes(4), width=1, height=1, scheduler="euler", timings={}, adapter="a")
    assert write_rendering(old, tmp_path / "w.png")["peak_bytes"] is None


def _report(**changes: Any) -> dict[str, Any]:
    stat = {"median": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]}
    report = {
        "kind": "sd15", "height": 64, "width": 64, "precision": "fp32", "steps": 2,
        "robustness": True, "adapter": "fake", "kernelPath": "fp32", "vaeTiling": "auto",
        "vaeTiles": 0, "offload": False, "pipeline_compile_ms": 1.0,
        "stages": dict.fromkeys(runner.STAGES, stat), "peak_gpu_bytes": 2**31,
        "stagePeakBytes": PEAKS,
    }  # fmt: skip
    return {**report, **changes}


@pytest.fixture
def node_runs(stand_in_runner: RunnerStandIn) -> list[dict[str, Any]]:
    """Each run of the Node bench runner: its options; it reports ``_report()`` with its
    offload and robustness."""

    def report(options: dict[str, Any]) -> dict[str, Any]:
        return _report(offload=options["offload"], robustness=options["robustness"])

    return stand_in_runner(report)


def test_bench_passes_offload_to_each_run(node_runs: list[dict[str, Any]], tmp_path: Path) -> None:
    reports = runner.run_bench(tmp_path, robustness=(True, False), offload=True)
    assert [run["offload"] for run in node_runs] == [True, True]
    assert [r["offload"] for r in reports] == [True, True]
    runner.run_bench(tmp_path, robustness=(True,))
    assert node_runs[-1]["offload"] is False


def test_cli_bench_passes_offload_and_prints_the_peaks(
    node_runs: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", str(tmp_path), "--robustness", "on", "--offload", "--json", str(out)]
    assert main(argv) == 0
    assert node_runs[0]["offload"] is True
    (report,) = json.loads(out.read_text())
    assert (report["offload"], report["stagePeakBytes"]) == (True, PEAKS)
    printed = capsys.readouterr().out
    assert "  peak GPU memory    2.00 GiB (the whole run)" in printed
    assert "  sequential offload on (weights uploaded per generation)" in printed
    assert "  stage peak GPU     text encoder 3 MiB, denoise 1,024 MiB, decode 5 MiB" in printed
    assert "  generation peak    1.00 GiB (the most a generation held)" in printed


def test_the_table_says_nothing_of_offload_for_older_reports() -> None:
    assert "  sequential offload off" in runner.format_table([_report()])
    old = {k: v for k, v in _report().items() if k not in ("offload", "stagePeakBytes")}
    table_text = runner.format_table([old])
    assert "offload" not in table_text and "stage peak" not in table_text


def test_the_record_carries_offload_and_the_stage_peaks(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    on = webgpu_result(True, offload=True, stagePeakBytes=PEAKS)
    off = webgpu_result(False, offload=True, stagePeakBytes=PEAKS)
    doc = combine([on, off], [pytorch_result("fp32")], command="c", machine="m")
    (run,) = webgpu_runs(check_document("doc", doc))
    assert run["offload"] is True
    assert run["stage_peak_bytes"] == {
        "text_encoder": 3 * 2**20,
        "denoise": 2**30,
        "decode": 5 * 2**20,
    }
    assert run["generation_peak_gpu_bytes"] == 2**30
    markdown = table(doc)
    assert "| Peak GPU memory in a generation: denoise (GiB) | 1.00 | 1.00 | — |" in markdown
    assert "| Peak GPU memory in a generation: text encoder (GiB) |" in markdown


def test_results_without_the_fields_render_as_before(one_build_doc: dict[str, Any]) -> None:
    doc = one_build_doc
    (run,) = webgpu_runs(doc)
    assert (run["offload"], run["stage_peak_bytes"]) == (None, None)
    assert run["generation_peak_gpu_bytes"] is None
    assert "in a generation" not in table(doc)
    # A document written before the fields were recorded.
    older = {**doc, "webgpu_runs": [{k: v for k, v in run.items() if "offload" not in k}]}
    del older["webgpu_runs"][0]["stage_peak_bytes"]
    assert "in a generation" not in table(check_document("older", older))


def test_results_of_both_offload_settings_in_one_build_are_refused(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    on, off = webgpu_result(True, offload=True), webgpu_result(False)
    with pytest.raises(BenchReportError, match="some ran with --offload and some without"):
        combine([on, off], [pytorch_result("fp32")], command="c", machine="m")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"offload": "yes"}, 'webgpu\\[0\\]: offload must be true or false, got "yes"'),
        ({"stagePeakBytes": [1]}, "stagePeakBytes must be an object of stage peaks"),
        ({"stagePeakBytes": {"denoise": -1}}, "stagePeakBytes.denoise: expected a non-negative"),
    ],
)
def test_bad_offload_fields_are_refused(
    webgpu_result: ResultFactory, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(BenchReportError, match=message):
        combine([webgpu_result(True, **changes)], [], command="c", machine="m")
