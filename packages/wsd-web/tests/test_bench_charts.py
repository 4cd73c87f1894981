"""Benchmark reports: the charts and the page.

The sample results come from conftest.py; combining them and the tables are tested
in test_bench_report.py.
"""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench.charts import chart_svg, kernels_svg
from wsd_web.bench.page import render_page
from wsd_web.bench.results import STAGES, TOP_KERNELS, check_document, combine, webgpu_runs

SVG = "{http://www.w3.org/2000/svg}"
ResultFactory = Callable[..., dict[str, Any]]
Ms = Callable[[dict[str, Any], str], float]
COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "benchmarks"


def bars(svg: str, attr: str = "data-series") -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if attr in r.attrib]


# -- charts -------------------------------------------------------------------------------


def test_chart_is_well_formed_svg_with_one_bar_per_result_and_stage(
    full_doc: dict[str, Any],
) -> None:
    svg = chart_svg(full_doc)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    found = bars(svg)
    series = ["webgpu", "webgpu_no_robustness", "pytorch_fp32", "pytorch_fp16"]
    assert [(b.get("data-stage"), b.get("data-series")) for b in found] == [
        (stage, key) for stage, _ in STAGES for key in series
    ]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "SD 1.5, 512x512, 20 steps, batch 2: median time per stage (lower is better)" in texts
    assert any("nvidia hopper NVIDIA 580.159.04" in (t or "") for t in texts)
    assert {"WebGPU", "WebGPU (no robustness)", "PyTorch fp32", "PyTorch fp16"} <= set(texts)
    assert {"61.3 ms", "1,335 ms", "0.084 ms"} <= set(texts)
    assert {"0.01", "0.1", "1", "10", "100", "1,000", "10,000"} <= set(texts)


def test_chart_x_axis_is_logarithmic(full_doc: dict[str, Any]) -> None:
    svg = chart_svg(full_doc)
    root = ET.fromstring(svg)
    ticks = {t.text: float(t.get("x", "")) for t in root.iter(f"{SVG}text") if t.text}
    decade = ticks["10"] - ticks["1"]
    assert decade > 0
    assert ticks["100"] - ticks["10"] == pytest.approx(decade, abs=0.2)
    by_value = []
    for bar in bars(svg):
        title = bar.find(f"{SVG}title")
        assert title is not None and title.text
        value = float(title.text.split(": ")[-1].removesuffix(" ms").replace(",", ""))
        end = float(bar.get("x", "")) + float(bar.get("width", ""))
        assert end == pytest.approx(ticks["1"] + math.log10(value) * decade, abs=0.5)
        by_value.append((value, end))
    ends = [end for _, end in sorted(by_value)]
    assert ends == sorted(ends)


def test_chart_is_deterministic(full_doc: dict[str, Any]) -> None:
    doc = full_doc
    assert chart_svg(doc) == chart_svg(copy.deepcopy(doc))
    assert kernels_svg(doc) == kernels_svg(copy.deepcopy(doc))


def test_chart_escapes_text(webgpu_result: ResultFactory, pytorch_result: ResultFactory) -> None:
    adapter = 'gpu <"A&B"> \x01'
    doc = combine([webgpu_result(adapter=adapter)], [pytorch_result()], command="c", machine="m")
    root = ET.fromstring(chart_svg(doc))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any('gpu <"A&B"> ' in t for t in texts)
    kernels = kernels_svg(doc)
    assert kernels is not None
    ET.fromstring(kernels)


def test_chart_leaves_out_stages_and_bars_that_were_not_measured(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    fp32 = pytorch_result()
    del fp32["stages"]["vae_decode_ms"]
    web = webgpu_result()
    del web["stages"]["vae_decode_ms"]
    doc = combine([web], [fp32], command="c", machine="m")
    found = bars(chart_svg(doc))
    assert len(found) == 2 * (len(STAGES) - 1)
    assert "vae_decode" not in {b.get("data-stage") for b in found}


def test_kernels_chart_has_a_bar_per_top_kernel_longest_first(
    full_doc: dict[str, Any], kernel_names: list[str]
) -> None:
    svg = kernels_svg(full_doc)
    assert svg is not None
    found = bars(svg, "data-kernel")
    assert [b.get("data-kernel") for b in found] == kernel_names[:TOP_KERNELS]
    widths = [float(b.get("width", "")) for b in found]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] / widths[1] == pytest.approx(2, rel=0.01)  # linear: 1/1 vs 1/2


def test_no_kernels_chart_without_kernels(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    doc = combine([webgpu_result(kernels=[])], [pytorch_result()], command="c", machine="m")
    assert kernels_svg(doc) is None


def test_chart_of_two_builds_has_a_bar_per_build_and_pytorch_per_stage(
    two_builds: dict[str, Any], two_doc: dict[str, Any], ms: Ms
) -> None:
    svg = chart_svg(two_doc)
    found = bars(svg)
    series = [
        "webgpu_0",
        "webgpu_0_no_robustness",
        "webgpu_1",
        "webgpu_1_no_robustness",
        "pytorch_fp32",
        "pytorch_fp16",
    ]
    assert [(b.get("data-stage"), b.get("data-series")) for b in found] == [
        (stage, key) for stage, _ in STAGES for key in series
    ]
    unet = {b.get("data-series"): b for b in found if b.get("data-stage") == "unet_step"}
    title = unet["webgpu_1"].find(f"{SVG}title")
    assert title is not None
    assert title.text == f"WebGPU fp16, UNet step: {ms(two_builds['fp16'], 'unet_step'):.1f} ms"
    texts = {t.text for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert {"WebGPU fp32", "WebGPU fp16 (no robustness)", "PyTorch fp16"} <= texts
    colours = {b.get("data-series"): b.get("fill") for b in found}
    assert len(set(colours.values())) == len(series)


def test_kernels_chart_of_two_builds_has_a_panel_each(two_doc: dict[str, Any]) -> None:
    svg = kernels_svg(two_doc)
    assert svg is not None
    found = bars(svg, "data-kernel")
    runs = [b.get("data-run") for b in found]
    assert runs == ["0"] * TOP_KERNELS + ["1"] * TOP_KERNELS
    assert all(b.get("data-kernel", "").endswith("_f16") for b in found[TOP_KERNELS:])
    texts = {t.text for t in ET.fromstring(svg).iter(f"{SVG}text")}
    assert "WebGPU fp16 (shader-f16 kernels): top 15 of 18 kernels" in texts


#: A version-1 document (one build at the top level) as committed on 2026-11-21, with
#: the charts rendered from it then.
V1 = Path(__file__).parent / "data" / "bench-v1"


def test_old_single_build_documents_still_load_and_render_as_committed(ms: Ms) -> None:
    """A version-1 document still reads, as one record, and renders the charts
    committed with it; every committed document renders the charts beside it."""
    doc = check_document("sdxl-1024", json.loads((V1 / "sdxl-1024.json").read_text()))
    assert doc["version"] == 1
    [run] = webgpu_runs(doc)
    assert (run["precision"], run["kernel_path"]) == ("fp32", "fp32")
    assert run["webgpu"] is doc["webgpu"] and run["ratios"] is doc["ratios"]
    assert run["ratio_unet_step_vs_pytorch_fp32"] == doc["ratio_unet_step_vs_pytorch_fp32"]
    assert run["ratio_unet_step_vs_pytorch_fp16"] == pytest.approx(
        ms(doc["webgpu"], "unet_step") / ms(doc["pytorch_fp16"], "unet_step")
    )
    assert chart_svg(doc) == (V1 / "sdxl-1024.svg").read_text()
    assert kernels_svg(doc) == (V1 / "sdxl-1024-kernels.svg").read_text()
    for name in ("sd15-512", "sdxl-1024"):
        doc = check_document(name, json.loads((COMMITTED / f"{name}.json").read_text()))
        assert chart_svg(doc) == (COMMITTED / f"{name}.svg").read_text()
        assert kernels_svg(doc) == (COMMITTED / f"{name}-kernels.svg").read_text()


# -- the page -----------------------------------------------------------------------------


def test_page_has_a_section_per_result_with_charts_tables_and_the_headline(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, full_doc: dict[str, Any]
) -> None:
    doc = {**full_doc, "name": "sd15-512"}
    xl = combine(
        [webgpu_result(kind="sdxl", height=1024, width=1024, kernels=[])],
        [pytorch_result(kind="sdxl", height=1024, width=1024)],
        command="wsd-web bench build/sdxl > x.json",
        machine="m",
    )
    page = render_page([doc, {**xl, "name": "sdxl-1024"}])
    headings = re.findall(r"^#+ .*", page, flags=re.MULTILINE)
    date = doc["date"]
    assert headings == [
        "# Benchmarks",
        "## At a glance",
        f"## SD 1.5, 512x512, 20 steps \u2014 sd15-512, {date}",
        f"## SDXL, 1024x1024, 20 steps \u2014 sdxl-1024, {date}",
        "## How to reproduce",
    ]
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", page)
    assert links == [
        "benchmarks/sd15-512.svg",
        "benchmarks/sd15-512-kernels.svg",
        "benchmarks/sdxl-1024.svg",
    ]
    assert "```bash\nwsd-web bench build/sd15-fp32 > webgpu.json\n```" in page
    assert "- Machine: 1x NVIDIA H200, 16 vCPU; measured " in page
    assert "`nvidia hopper NVIDIA 580.159.04`" in page
    assert "TF32 matmul off, TF32 cuDNN on" in page
    assert "takes 3.37x the time of PyTorch fp32 and 8.42x that of PyTorch fp16." in page
    assert "| UNet step (ms) | 61.3 | 49.0 | 18.2 | 7.28 | 3.37x |" in page
    assert "disable_robustness" in page.split("## SD 1.5")[0]
    assert "SwiftShader" in page.split("## How to reproduce")[1]


def test_page_flags_a_swiftshader_result(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    doc = combine(
        [webgpu_result(adapter="google swiftshader Vulkan")],
        [pytorch_result()],
        command="c",
        machine="m",
    )
    page = render_page([{**doc, "name": "smoke"}])
    assert "> Measured on SwiftShader (the CPU): for smoke testing only." in page


def test_page_of_two_builds_names_each_with_its_kernels_features_and_headline(
    two_builds: dict[str, Any], two_doc: dict[str, Any], ms: Ms, shown: Callable[[float], str]
) -> None:
    b = two_builds
    page = render_page([{**two_doc, "name": "sd15-512"}])
    assert "## SD 1.5, 512x512, 20 steps, WebGPU fp32 and fp16" in page
    assert (
        "- WebGPU fp16: build `sd15-fp16` (fp16); kernel path shader-f16; device features "
        "`shader-f16`, `subgroups`, `timestamp-query`; Dawn toggles "
        "`enable-dawn-features=vulkan_enable_f16_on_nvidia`." in page
    )
    assert "- WebGPU fp32: build `sd15-fp32` (fp32); kernel path fp32; device features" in page
    unet = {key: ms(result, "unet_step") for key, result in b.items()}
    assert (
        "takes "
        f"{shown(unet['fp32'] / unet['pytorch_fp32'])} the time of PyTorch fp32 and "
        f"{shown(unet['fp32'] / unet['pytorch_fp16'])} that of PyTorch fp16 with the fp32 "
        f"build, and {shown(unet['fp16'] / unet['pytorch_fp32'])} the time of PyTorch fp32 and "
        f"{shown(unet['fp16'] / unet['pytorch_fp16'])} that of PyTorch fp16 with the fp16 build."
        in page
    )
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", page)
    assert links == ["benchmarks/sd15-512.svg", "benchmarks/sd15-512-kernels.svg"]


def test_page_lists_every_build_at_a_glance_newest_first_with_unique_headings(
    full_doc: dict[str, Any], two_doc: dict[str, Any]
) -> None:
    older = {**full_doc, "name": "sd15-512", "date": "2026-12-01"}
    newer = {**two_doc, "name": "sd15-512-paths", "date": "2026-12-03"}
    page = render_page([older, newer])
    # The two results have the same model, size and steps: their name and date tell them apart.
    headings = re.findall(r"^## .*", page, flags=re.MULTILINE)
    assert headings[1:3] == [
        "## SD 1.5, 512x512, 20 steps, WebGPU fp32 and fp16 \u2014 sd15-512-paths, 2026-12-03",
        "## SD 1.5, 512x512, 20 steps \u2014 sd15-512, 2026-12-01",
    ]
    glance = page.split("## At a glance")[1].split("\n## ")[0]
    rows = [line for line in glance.splitlines() if line.startswith("| `")]
    # One row per WebGPU build, the newest result first, its fp32 build first.
    assert [row.split(" | ")[:6] for row in rows] == [
        ["| `sd15-512-paths`", "2026-12-03", "1x NVIDIA H200", "SD 1.5 512x512", "fp32", "fp32"],
        [
            "| `sd15-512-paths`",
            "2026-12-03",
            "1x NVIDIA H200",
            "SD 1.5 512x512",
            "fp16",
            "shader-f16",
        ],
        ["| `sd15-512`", "2026-12-01", "1x NVIDIA H200", "SD 1.5 512x512", "fp32", "fp32"],
    ]
    for row, run in zip(rows, [*newer["webgpu_runs"], *older["webgpu_runs"]], strict=True):
        cells = row.strip("|").split(" | ")
        assert cells[7] == _ratio_text(run["ratio_unet_step_vs_pytorch_fp16"])
        assert cells[8] == _ratio_text(run["ratio_unet_step_vs_pytorch_fp32"])


def _ratio_text(value: float) -> str:
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"
