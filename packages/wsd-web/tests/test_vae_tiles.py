"""``--vae-tiles``: parsed by ``wsd-web render`` and ``bench``, passed to the page's and the
Node runner's generations, and the tiles decoded reported back (no browser, no GPU: the page
and the runner are stand-ins)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench import runner
from wsd_web.cli import build_parser, main
from wsd_web.render import VAE_TILES, RenderError, Rendering, render, write_rendering

#: ``stand_in_page`` (conftest.py): the page's ``window.wsd``, generations returning these fields.
StandIn = Callable[[dict[str, Any]], Any]
#: ``stand_in_runner`` (conftest.py): the Node bench runner, reporting ``report(options)``.
RunnerStandIn = Callable[[Callable[[dict[str, Any]], dict[str, Any]]], list[dict[str, Any]]]


@pytest.mark.parametrize(
    "command", [["render", "DIR", "--prompt", "x", "--out", "a.png"], ["bench", "DIR"]]
)
def test_vae_tiles_is_auto_unless_given_and_takes_auto_on_off(command: list[str]) -> None:
    assert build_parser().parse_args(command).vae_tiles == "auto"
    for mode in VAE_TILES:
        assert build_parser().parse_args([*command, "--vae-tiles", mode]).vae_tiles == mode


@pytest.mark.parametrize(
    "command", [["render", "DIR", "--prompt", "x", "--out", "a.png"], ["bench", "DIR"]]
)
def test_vae_tiles_refuses_another_mode(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        build_parser().parse_args([*command, "--vae-tiles", "tiles"])
    assert exit.value.code == 2
    assert "argument --vae-tiles: invalid choice: 'tiles'" in capsys.readouterr().err


def test_render_refuses_another_mode_before_opening_a_page(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="VAE tiling 'sideways': choose auto, on, off"):
        render(tmp_path, prompt="x", vae_tiling="sideways")


@pytest.fixture
def page(stand_in_page: StandIn) -> Any:
    """The stand-in page; each generation decoded in 9 tiles."""
    return stand_in_page({"vaeTiles": 9})


@pytest.mark.parametrize("mode", VAE_TILES)
def test_render_passes_the_mode_to_generate_and_keeps_the_tiles(
    page: Any, tmp_path: Path, mode: str
) -> None:
    rendering = render(tmp_path, prompt="x", vae_tiling=mode)
    assert page.paths == ["index.html"]
    assert page.generated[0]["vaeTiling"] == mode
    assert rendering.vae_tiles == 9


def test_render_defaults_to_auto(page: Any, tmp_path: Path) -> None:
    render(tmp_path, prompt="x")
    assert page.paths == ["index.html"]
    assert page.generated[0]["vaeTiling"] == "auto"


def test_cli_render_passes_vae_tiles_and_writes_the_count(
    page: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.png"
    argv = ["render", str(tmp_path), "--prompt", "x", "--vae-tiles", "on", "--out", str(out)]
    assert main(argv) == 0
    assert page.paths == ["index.html"]
    assert page.generated[0]["vaeTiling"] == "on"
    printed = json.loads(capsys.readouterr().out)
    assert printed["vae_tiles"] == 9
    assert json.loads(out.with_suffix(".json").read_text())["vae_tiles"] == 9


def test_the_rendering_record_says_0_tiles_for_a_whole_decode(tmp_path: Path) -> None:
    whole = Rendering(rgba=bytes(4), width=1, height=1, scheduler="euler", timings={}, adapter="a")
    assert write_rendering(whole, tmp_path / "w.png")["vae_tiles"] == 0


def _report(**changes: Any) -> dict[str, Any]:
    stat = {"median": 1.0, "min": 1.0, "max": 1.0, "samples": [1.0]}
    report = {
        "kind": "sd15", "height": 64, "width": 64, "precision": "fp32", "steps": 2,
        "robustness": True, "adapter": "fake", "kernelPath": "fp32", "vaeTiling": "auto",
        "vaeTiles": 0, "pipeline_compile_ms": 1.0, "stages": dict.fromkeys(runner.STAGES, stat),
        "peak_gpu_bytes": 0,
    }  # fmt: skip
    return {**report, **changes}


@pytest.fixture
def node_runs(stand_in_runner: RunnerStandIn) -> list[dict[str, Any]]:
    """Each run of the Node bench runner: its options; it reports ``_report()`` with its VAE
    tiling (4 tiles when on)."""

    def report(options: dict[str, Any]) -> dict[str, Any]:
        tiles = 4 if options["vaeTiling"] == "on" else 0
        return _report(vaeTiling=options["vaeTiling"], vaeTiles=tiles)

    return stand_in_runner(report)


@pytest.mark.parametrize("mode", VAE_TILES)
def test_bench_passes_the_mode_to_each_run(
    node_runs: list[dict[str, Any]], tmp_path: Path, mode: str
) -> None:
    reports = runner.run_bench(tmp_path, robustness=(True, False), vae_tiling=mode)
    assert [run["vaeTiling"] for run in node_runs] == [mode, mode]
    assert [r["vaeTiling"] for r in reports] == [mode, mode]


def test_bench_defaults_to_auto_and_refuses_another_mode(
    node_runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    runner.run_bench(tmp_path, robustness=(True,))
    assert node_runs[0]["vaeTiling"] == "auto"
    with pytest.raises(runner.BenchError, match="VAE tiling 'tiles': choose auto, on, off"):
        runner.run_bench(tmp_path, vae_tiling="tiles")


def test_cli_bench_passes_vae_tiles(
    node_runs: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", str(tmp_path), "--robustness", "on", "--vae-tiles", "on", "--json", str(out)]
    assert main(argv) == 0
    assert node_runs[0]["vaeTiling"] == "on"
    (report,) = json.loads(out.read_text())
    assert (report["vaeTiling"], report["vaeTiles"]) == ("on", 4)
    assert "VAE tiling         on (4 tiles)" in capsys.readouterr().out


def test_the_table_says_how_the_vae_decoded() -> None:
    assert "VAE tiling         auto (whole)" in runner.format_table([_report()])
    table = runner.format_table([_report(vaeTiling="on", vaeTiles=9)])
    assert "VAE tiling         on (9 tiles)" in table
    # Reports from before the option say nothing about it.
    old = {k: v for k, v in _report().items() if k not in ("vaeTiling", "vaeTiles")}
    assert "VAE tiling" not in runner.format_table([old])
