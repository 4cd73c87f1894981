"""Benchmark reports: combining results, the tables, the charts and the page.

The sample results come from conftest.py; ``wsd-web report`` itself is tested
in test_bench_report_cli.py.
"""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from wsd_web.bench.charts import chart_svg, kernels_svg
from wsd_web.bench.page import render_page, table
from wsd_web.bench.results import STAGES, TOP_KERNELS, combine

SVG = "{http://www.w3.org/2000/svg}"
ResultFactory = Callable[..., dict[str, Any]]


def bars(svg: str, attr: str = "data-series") -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if attr in r.attrib]


# -- combine ------------------------------------------------------------------------------


def test_combine_keeps_each_result_and_the_settings(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, full_doc: dict[str, Any]
) -> None:
    doc = full_doc
    assert doc["version"] == 1
    assert (doc["kind"], doc["height"], doc["width"], doc["steps"], doc["batch"]) == (
        "sd15",
        512,
        512,
        20,
        2,
    )
    assert doc["command"] == "wsd-web bench build/sd15-fp32 > webgpu.json"
    assert doc["machine"] == "1x NVIDIA H200, 16 vCPU"
    assert doc["adapter"] == "nvidia hopper NVIDIA 580.159.04"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["date"])
    assert doc["webgpu"] == webgpu_result(True)
    assert doc["webgpu_no_robustness"] == webgpu_result(False)
    assert doc["pytorch_fp32"] == pytorch_result("fp32")
    assert doc["pytorch_fp16"] == pytorch_result("fp16")
    json.dumps(doc, allow_nan=False)


def test_combine_takes_the_inputs_in_any_order(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, full_doc: dict[str, Any]
) -> None:
    a = full_doc
    b = combine(
        [webgpu_result(False), webgpu_result(True)],
        [pytorch_result("fp16"), pytorch_result("fp32")],
        command=a["command"],
        machine=a["machine"],
    )
    assert a == b


def test_ratios_are_webgpu_over_pytorch_medians_for_every_stage(
    full_doc: dict[str, Any], sample_medians: tuple[dict[str, float], dict[str, float]]
) -> None:
    doc = full_doc
    webgpu_ms, pytorch_fp32_ms = sample_medians
    expected = {}
    for key, ms in webgpu_ms.items():
        stage = key.removesuffix("_ms")
        expected[f"{stage}_vs_pytorch_fp32"] = ms / pytorch_fp32_ms[key]
        expected[f"{stage}_vs_pytorch_fp16"] = ms / (pytorch_fp32_ms[key] * 0.4)
    assert doc["ratios"] == pytest.approx(expected)
    assert doc["ratio_unet_step_vs_pytorch_fp32"] == pytest.approx(61.3 / 18.2)


def test_ratios_only_for_stages_both_sides_measured(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    fp16 = pytorch_result("fp16")
    del fp16["stages"]["scheduler_step_ms"]
    doc = combine([webgpu_result()], [fp16], command="c", machine="m")
    assert doc["pytorch_fp32"] is None and doc["webgpu_no_robustness"] is None
    assert sorted(doc["ratios"]) == sorted(
        f"{stage}_vs_pytorch_fp16" for stage, _ in STAGES if stage != "scheduler_step"
    )
    assert doc["ratio_unet_step_vs_pytorch_fp32"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("kind", "sdxl"), ("height", 768), ("width", 768), ("steps", 30), ("batch", 1)],
)
def test_combine_refuses_results_of_different_settings(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, key: str, value: object
) -> None:
    with pytest.raises(ValueError, match=rf"pytorch\[1\]: {key} is {value!r} but webgpu\[0\]"):
        combine(
            [webgpu_result()],
            [pytorch_result("fp32"), pytorch_result("fp16", **{key: value})],
            command="c",
            machine="m",
        )


def test_combine_needs_the_webgpu_result_with_robustness_on(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    with pytest.raises(ValueError, match="no WebGPU result with robustness on in webgpu\\[0\\]"):
        combine([webgpu_result(False)], [pytorch_result()], command="c", machine="m")


def test_combine_refuses_two_results_for_one_column(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    with pytest.raises(ValueError, match=r"webgpu\[0\] and webgpu\[1\] are both WebGPU results"):
        combine([webgpu_result(), webgpu_result()], [pytorch_result()], command="c", machine="m")
    with pytest.raises(ValueError, match=r"pytorch\[0\] and pytorch\[1\] are both PyTorch fp16"):
        combine(
            [webgpu_result()],
            [pytorch_result("fp16"), pytorch_result("fp16")],
            command="c",
            machine="m",
        )


@pytest.mark.parametrize(
    ("webgpu", "pytorch", "message"),
    [
        (
            ("pytorch", {}),
            {},
            r"webgpu\[0\]: runtime is \"pytorch\", expected 'webgpu'",
        ),
        (("webgpu", {}), {"precision": "bf16"}, "precision must be fp32 or fp16"),
        (("webgpu", {"robustness": "yes"}), {}, "robustness must be true or false"),
        (
            ("webgpu", {"stages": {"unet_step_ms": {"median": "fast"}}}),
            {},
            r"webgpu\[0\]: stages.unet_step_ms.median: expected a non-negative number",
        ),
        (("webgpu", {"stages": {}}), {}, "stages must be an object with some of"),
        (
            ("webgpu", {"kernels": [{"name": "k", "calls": 1, "ms": math.nan, "share": 0.1}]}),
            {},
            r"kernels\[0\].ms: expected a non-negative number",
        ),
    ],
)
def test_combine_names_the_result_that_is_malformed(
    webgpu_result: ResultFactory,
    pytorch_result: ResultFactory,
    webgpu: tuple[str, dict[str, Any]],
    pytorch: dict[str, Any],
    message: str,
) -> None:
    """``webgpu`` is the runtime of the result given as WebGPU's and its changes;
    ``pytorch`` the changes to the PyTorch result."""
    runtime, changes = webgpu
    given = (pytorch_result if runtime == "pytorch" else webgpu_result)(**changes)
    with pytest.raises(ValueError, match=message):
        combine([given], [pytorch_result(**pytorch)], command="c", machine="m")


# -- tables -------------------------------------------------------------------------------


def _rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_table_has_a_row_per_stage_and_a_column_per_result(full_doc: dict[str, Any]) -> None:
    rows = _rows(table(full_doc))
    assert rows["Median"] == [
        "WebGPU",
        "WebGPU (no robustness)",
        "PyTorch fp32",
        "PyTorch fp16",
        "WebGPU / PyTorch fp32",
    ]
    assert rows["Text encoder (ms)"] == ["9.70", "7.76", "3.10", "1.24", "3.13x"]
    assert rows["UNet step (ms)"] == ["61.3", "49.0", "18.2", "7.28", "3.37x"]
    assert rows["Scheduler step (ms)"] == ["0.420", "0.336", "0.210", "0.084", "2.00x"]
    assert rows["VAE decode (ms)"] == ["88.1", "70.5", "30.5", "12.2", "2.89x"]
    assert rows["20-step generation (ms)"] == ["1,335", "1,068", "420", "168", "3.18x"]
    assert rows["UNet step, GPU time (ms)"] == ["52.0", "41.6", "—", "—", "—"]
    assert rows["Peak GPU memory (GiB)"] == ["3.63", "3.63", "4.75", "4.75", "—"]
    assert rows["Pipeline compile (ms)"] == ["4,321", "4,321", "—", "—", "—"]
    assert rows["Load (ms)"] == ["1,234", "1,234", "—", "—", "—"]


def test_table_lists_the_top_kernels_by_time(
    full_doc: dict[str, Any], kernel_names: list[str]
) -> None:
    markdown = table(full_doc)
    assert f"The top {TOP_KERNELS} of {len(kernel_names)} kernels of a UNet step" in markdown
    rows = _rows(markdown)
    assert rows["Kernel"] == ["Calls", "ms per UNet step", "Share"]
    kernel_rows = [name for name in rows if name.startswith("`")]
    assert kernel_rows == [f"`{name}`" for name in kernel_names[:TOP_KERNELS]]
    assert rows["`fused_conv2d_add_add`"] == ["1", "14.9", "28.6%"]


def test_table_leaves_out_what_was_not_measured(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    doc = combine(
        [webgpu_result(kernels=[], unet_step_gpu_ms=None, peak_gpu_bytes=None)],
        [pytorch_result("fp16", peak_gpu_bytes=None)],
        command="c",
        machine="m",
    )
    markdown = table(doc)
    rows = _rows(markdown)
    assert rows["Median"] == ["WebGPU", "PyTorch fp16"]
    assert rows["UNet step (ms)"] == ["61.3", "7.28"]
    assert "UNet step, GPU time (ms)" not in rows and "Peak GPU memory (GiB)" not in rows
    assert "Kernel" not in rows


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
    assert headings == [
        "# Benchmarks",
        "## SD 1.5, 512x512, 20 steps",
        "## SDXL, 1024x1024, 20 steps",
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
