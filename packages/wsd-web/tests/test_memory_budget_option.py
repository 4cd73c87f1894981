"""``--memory-budget``: parsed by ``wsd-web render`` and ``bench``, passed to the page (its
``?memory-budget=``, so the load refuses a build that cannot fit, and each generation's
``memoryBudget``) and to the Node runner; with a budget an ``--offload`` not given is left to
it. The mode a generation ran with (``offload``) and the bytes the build reckons it needs
(``memoryNeedBytes``) come back, and the bench table and the benchmarks page show them (no
browser, no GPU: the page and the runner are stand-ins)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from wsd_web.bench import runner
from wsd_web.bench.page import render_page, table
from wsd_web.bench.results import BenchReportError, check_document, combine, webgpu_runs
from wsd_web.cli import build_parser, main
from wsd_web.render import RenderError, Rendering, page_path, render, render_many, write_rendering

ResultFactory = Callable[..., dict[str, Any]]
#: ``stand_in_page`` (conftest.py): the page's ``window.wsd``, generations returning these fields.
StandIn = Callable[[dict[str, Any]], Any]
#: ``stand_in_runner`` (conftest.py): the Node bench runner, reporting ``report(options)``.
RunnerStandIn = Callable[[Callable[[dict[str, Any]], dict[str, Any]]], list[dict[str, Any]]]
GIB = 2**30
RENDER = ["render", "DIR", "--prompt", "x", "--out", "a.png"]
NEED = 1536 * 2**20


@pytest.mark.parametrize("command", [RENDER, ["bench", "DIR"]])
def test_the_budget_is_none_unless_given_and_in_gib(command: list[str]) -> None:
    assert build_parser().parse_args(command).memory_budget is None
    assert build_parser().parse_args([*command, "--memory-budget", "4"]).memory_budget == 4.0
    assert build_parser().parse_args([*command, "--memory-budget=2.5"]).memory_budget == 2.5


@pytest.mark.parametrize("command", [RENDER, ["bench", "DIR"]])
@pytest.mark.parametrize("bad", ["0", "-1", "four", "inf", "nan"])
def test_a_budget_that_is_not_a_positive_number_is_refused(
    command: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*command, f"--memory-budget={bad}"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --memory-budget: {bad!r} is not a positive number of GiB" in err


@pytest.mark.parametrize("bad", [0, -2.0, float("inf"), float("nan"), "4", True])
def test_render_refuses_a_bad_budget_before_opening_a_page(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(RenderError, match=r"memory budget .*: give the GPU memory budget in GiB"):
        render(tmp_path, prompt="x", memory_budget=bad)


def test_the_page_is_asked_for_the_budget() -> None:
    assert page_path(None) == "index.html"
    assert page_path(None, 4) == "index.html?memory-budget=4.0"
    query = parse_qs(urlsplit(page_path("fp32", 2.5)).query)
    assert query == {"kernel-path": ["fp32"], "memory-budget": ["2.5"]}


@pytest.fixture
def page(stand_in_page: StandIn) -> Any:
    """The stand-in page; each generation ran with offload and reckons ``NEED``."""
    return stand_in_page({"vaeTiles": 4, "offload": True, "memoryNeedBytes": NEED})


def test_with_a_budget_offload_is_left_to_it_unless_given(page: Any, tmp_path: Path) -> None:
    rendering = render(tmp_path, prompt="x", memory_budget=4)
    assert page.paths == ["index.html?memory-budget=4.0"]
    assert page.generated[0]["memoryBudget"] == 4 * GIB
    assert "offload" not in page.generated[0]
    assert (rendering.offload, rendering.memory_need_bytes) == (True, NEED)
    render(tmp_path, prompt="x", memory_budget=4, offload=True)
    assert page.generated[1]["offload"] is True
    render(tmp_path, prompt="x", memory_budget=4, offload=False)
    assert page.generated[2]["offload"] is False


def test_without_a_budget_render_passes_no_budget_and_offload_false(
    page: Any, tmp_path: Path
) -> None:
    render(tmp_path, prompt="x")
    assert page.paths == ["index.html"]
    assert page.generated[0]["offload"] is False
    assert "memoryBudget" not in page.generated[0]


def test_render_many_passes_the_budget_to_every_run(page: Any, tmp_path: Path) -> None:
    render_many(tmp_path, [{"prompt": "a"}, {"prompt": "b", "offload": True}], memory_budget=3)
    assert [g["memoryBudget"] for g in page.generated] == [3 * GIB, 3 * GIB]
    assert [g.get("offload") for g in page.generated] == [None, True]


def test_a_page_without_the_fields_gives_the_offload_asked_and_no_need(
    stand_in_page: StandIn, tmp_path: Path
) -> None:
    stand_in_page({"vaeTiles": 4})  # a page from before the fields
    rendering = render(tmp_path, prompt="x", offload=True)
    assert (rendering.offload, rendering.memory_need_bytes) == (True, None)
    assert render(tmp_path, prompt="x").offload is False


def test_cli_render_passes_the_budget_and_writes_the_mode_and_need(
    page: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.png"
    argv = ["render", str(tmp_path), "--prompt", "x", "--memory-budget", "6", "--out", str(out)]
    assert main(argv) == 0
    assert page.paths == ["index.html?memory-budget=6.0"]
    assert page.generated[0]["memoryBudget"] == 6 * GIB and "offload" not in page.generated[0]
    printed = json.loads(capsys.readouterr().out)
    assert (printed["offload"], printed["memory_need_bytes"]) == (True, NEED)
    written = json.loads(out.with_suffix(".json").read_text())
    assert (written["offload"], written["memory_need_bytes"]) == (True, NEED)


def test_cli_render_with_budget_and_offload_fixes_offload(page: Any, tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    argv = ["render", str(tmp_path), "--prompt", "x", "--memory-budget", "6", "--offload"]
    assert main([*argv, "--out", str(out)]) == 0
    assert page.generated[0]["offload"] is True


def test_the_rendering_record_has_null_need_when_unknown(tmp_path: Path) -> None:
    old = Rendering(rgba=bytes(4), width=1, height=1, scheduler="euler", timings={}, adapter="a")
    record = write_rendering(old, tmp_path / "w.png")
    assert (record["offload"], record["memory_need_bytes"]) == (False, None)


def _report(**changes: Any) -> dict[str, Any]:
    stat = {"median": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]}
    report = {
        "kind": "sd15", "height": 64, "width": 64, "precision": "fp32", "steps": 2,
        "robustness": True, "adapter": "fake", "kernelPath": "fp32", "vaeTiling": "auto",
        "vaeTiles": 0, "offload": True, "memoryBudget": 4 * GIB, "pipeline_compile_ms": 1.0,
        "stages": dict.fromkeys(runner.STAGES, stat), "peak_gpu_bytes": 2**31,
        "stagePeakBytes": {"textEncoder": 1, "denoise": 2, "decode": 3}, "memoryNeedBytes": NEED,
    }  # fmt: skip
    return {**report, **changes}


@pytest.fixture
def node_runs(stand_in_runner: RunnerStandIn) -> list[dict[str, Any]]:
    """Each run of the Node bench runner: its options; it reports ``_report()``, the
    budget as it was given and offload on where the budget chose it."""

    def report(options: dict[str, Any]) -> dict[str, Any]:
        return _report(
            offload=options.get("offload", True),
            memoryBudget=options.get("memoryBudget"),
            robustness=options["robustness"],
        )

    return stand_in_runner(report)


def test_bench_passes_the_budget_and_leaves_offload_to_it(
    node_runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    reports = runner.run_bench(tmp_path, robustness=(True, False), memory_budget=4)
    assert [run["memoryBudget"] for run in node_runs] == [4 * GIB, 4 * GIB]
    assert not any("offload" in run for run in node_runs)
    assert [(r["offload"], r["memoryNeedBytes"]) for r in reports] == [(True, NEED)] * 2
    runner.run_bench(tmp_path, robustness=(True,), memory_budget=4, offload=True)
    assert node_runs[-1]["offload"] is True
    runner.run_bench(tmp_path, robustness=(True,))
    assert node_runs[-1]["offload"] is False and "memoryBudget" not in node_runs[-1]


def test_bench_refuses_a_bad_budget(node_runs: list[dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(runner.BenchError, match="memory budget 0: give a positive number"):
        runner.run_bench(tmp_path, memory_budget=0)
    assert node_runs == []


def test_cli_bench_passes_the_budget_and_prints_it_and_the_need(
    node_runs: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", str(tmp_path), "--robustness", "on", "--memory-budget", "4"]
    assert main([*argv, "--json", str(out)]) == 0
    assert node_runs[0]["memoryBudget"] == 4 * GIB and "offload" not in node_runs[0]
    (report,) = json.loads(out.read_text())
    assert (report["memoryBudget"], report["memoryNeedBytes"]) == (4 * GIB, NEED)
    printed = capsys.readouterr().out
    assert "  sequential offload on (weights uploaded per generation)" in printed
    assert "  memory budget      4.00 GiB" in printed
    assert "  reckoned GPU need  1,536 MiB (the build's own)" in printed


def test_the_table_says_nothing_of_the_budget_for_older_reports() -> None:
    old = {k: v for k, v in _report().items() if k not in ("memoryBudget", "memoryNeedBytes")}
    text = runner.format_table([old])
    assert "memory budget" not in text and "reckoned" not in text
    assert "memory budget" not in runner.format_table([_report(memoryBudget=None)])


def test_the_record_carries_the_need_and_the_page_shows_it(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    extra = {"memoryBudget": 4 * GIB, "memoryNeedBytes": NEED, "offload": True}
    on, off = webgpu_result(True, **extra), webgpu_result(False, **extra)
    doc = combine([on, off], [pytorch_result("fp32")], command="c", machine="m")
    (run,) = webgpu_runs(check_document("doc", doc))
    assert run["memory_need_bytes"] == NEED
    markdown = table(doc)
    assert "| GPU memory the build reckons (GiB) | 1.50 | 1.50 | — |" in markdown
    page_text = render_page([{**doc, "name": "sd15-512"}])
    assert "GPU memory budget 4.00 GiB (`--memory-budget`)" in page_text


def test_results_without_the_need_render_as_before(one_build_doc: dict[str, Any]) -> None:
    doc = one_build_doc
    (run,) = webgpu_runs(doc)
    assert run["memory_need_bytes"] is None
    assert "reckons" not in table(doc)
    older = {**doc, "webgpu_runs": [{k: v for k, v in run.items() if k != "memory_need_bytes"}]}
    (checked,) = webgpu_runs(check_document("older", older))
    assert checked.get("memory_need_bytes") is None
    assert "reckons" not in table(older)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memoryNeedBytes": -1}, "memoryNeedBytes: expected a non-negative number"),
        ({"memoryNeedBytes": "1"}, "memoryNeedBytes: expected a non-negative number"),
        ({"memoryBudget": True}, "memoryBudget: expected a non-negative number"),
    ],
)
def test_bad_budget_fields_are_refused(
    webgpu_result: ResultFactory, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(BenchReportError, match=message):
        combine([webgpu_result(True, **changes)], [], command="c", machine="m")


def test_a_record_with_a_bad_need_is_refused(one_build_doc: dict[str, Any]) -> None:
    doc = one_build_doc
    doc["webgpu_runs"][0]["memory_need_bytes"] = "lots"
    with pytest.raises(BenchReportError, match="memory_need_bytes: expected a non-negative"):
        check_document("doc", doc)
