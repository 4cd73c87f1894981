"""Benchmark reports: combining results, the tables, the charts, the page and `wsd-web report`."""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from wsd_web.bench_report import (
    STAGES,
    TOP_KERNELS,
    chart_svg,
    combine,
    kernels_svg,
    render_page,
    table,
)
from wsd_web.cli import main

SVG = "{http://www.w3.org/2000/svg}"
STAGE_KEYS = [f"{stage}_ms" for stage, _ in STAGES]

#: Median ms per stage, shaped like SD 1.5 at 512x512 on an H200.
WEBGPU_MS = {
    "text_encoder_ms": 9.7,
    "unet_step_ms": 61.3,
    "scheduler_step_ms": 0.42,
    "vae_decode_ms": 88.1,
    "generation_ms": 1335.0,
}
PYTORCH_FP32_MS = {
    "text_encoder_ms": 3.1,
    "unet_step_ms": 18.2,
    "scheduler_step_ms": 0.21,
    "vae_decode_ms": 30.5,
    "generation_ms": 420.0,
}
KERNELS = [
    "fused_conv2d_add_add",
    "fused_matmul_add",
    "fused_conv2d_add",
    "softmax",
    "fused_group_norm_silu",
    "fused_matmul_add_gelu",
    "fused_layer_norm",
    "fused_conv2d1_add_add",
    "fused_matmul1_add",
    "transpose_reshape",
    "fused_group_norm1_silu",
    "fused_conv2d2_add",
    "fused_matmul2_multiply",
    "concatenate",
    "resize2d",
    "fused_conv2d3_add",
    "take",
    "fused_mean_subtract",
]


def stat(median: float) -> dict[str, Any]:
    samples = [round(median * f, 4) for f in (0.98, 0.99, 1.0, 1.01, 1.03)]
    return {"median": median, "min": min(samples), "max": max(samples), "samples": samples}


def webgpu_result(robustness: bool = True, **changes: Any) -> dict[str, Any]:
    """What ``wsd-web bench`` writes (robustness off is 20% faster here)."""
    speed = 1.0 if robustness else 0.8
    weights = [1 / (i + 1) for i in range(len(KERNELS))]
    kernel_ms = [52.0 * speed * w / sum(weights) for w in weights]
    result = {
        "runtime": "webgpu",
        "tool": "wsd-web bench",
        "kind": "sd15",
        "model": "sd15-fp32",
        "build_id": "0123abcd",
        "precision": "fp32",
        "height": 512,
        "width": 512,
        "steps": 20,
        "batch": 2,
        "adapter": "nvidia hopper NVIDIA 580.159.04",
        "features": ["subgroups", "timestamp-query", "shader-f16"],
        "robustness": robustness,
        "warmup": 3,
        "repeats": 10,
        "load_ms": 1234.5,
        "pipeline_compile_ms": 4321.0,
        "stages": {key: stat(ms * speed) for key, ms in WEBGPU_MS.items()},
        "unet_step_gpu_ms": stat(52.0 * speed),
        "kernels": [
            {"name": name, "calls": 1 + i % 4 * 4, "ms": ms, "share": ms / (52.0 * speed)}
            for i, (name, ms) in enumerate(zip(KERNELS, kernel_ms, strict=True))
        ],
        "peak_gpu_bytes": 3_900_000_000,
        "extra_key_from_a_newer_bench": {"ignored": True},
    }
    result.update(changes)
    return result


def pytorch_result(precision: str = "fp32", **changes: Any) -> dict[str, Any]:
    """One entry of what ``python -m wsd_capture.bench`` writes (fp16 is 2.5x faster here)."""
    speed = 1.0 if precision == "fp32" else 0.4
    result = {
        "runtime": "pytorch",
        "tool": "python -m wsd_capture.bench",
        "kind": "sd15",
        "height": 512,
        "width": 512,
        "steps": 20,
        "batch": 2,
        "precision": precision,
        "attention": "sdpa",
        "device": "NVIDIA H200",
        "torch": "2.13.0",
        "diffusers": "0.42.0",
        "cuda": "12.8",
        "tf32": {"matmul": False, "cudnn": True},
        "scheduler": "PNDMScheduler",
        "warmup": 3,
        "repeats": 10,
        "stages": {key: stat(ms * speed) for key, ms in PYTORCH_FP32_MS.items()},
        "peak_gpu_bytes": 5_100_000_000,
    }
    result.update(changes)
    return result


def full_doc() -> dict[str, Any]:
    return combine(
        [webgpu_result(True), webgpu_result(False)],
        [pytorch_result("fp32"), pytorch_result("fp16")],
        command="wsd-web bench build/sd15-fp32 > webgpu.json",
        machine="1x NVIDIA H200, 16 vCPU",
    )


def bars(svg: str, attr: str = "data-series") -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if attr in r.attrib]


# -- combine ------------------------------------------------------------------------------


def test_combine_keeps_each_result_and_the_settings() -> None:
    doc = full_doc()
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


def test_combine_takes_the_inputs_in_any_order() -> None:
    a = full_doc()
    b = combine(
        [webgpu_result(False), webgpu_result(True)],
        [pytorch_result("fp16"), pytorch_result("fp32")],
        command=a["command"],
        machine=a["machine"],
    )
    assert a == b


def test_ratios_are_webgpu_over_pytorch_medians_for_every_stage() -> None:
    doc = full_doc()
    expected = {}
    for key, ms in WEBGPU_MS.items():
        stage = key.removesuffix("_ms")
        expected[f"{stage}_vs_pytorch_fp32"] = ms / PYTORCH_FP32_MS[key]
        expected[f"{stage}_vs_pytorch_fp16"] = ms / (PYTORCH_FP32_MS[key] * 0.4)
    assert doc["ratios"] == pytest.approx(expected)
    assert doc["ratio_unet_step_vs_pytorch_fp32"] == pytest.approx(61.3 / 18.2)


def test_ratios_only_for_stages_both_sides_measured() -> None:
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
def test_combine_refuses_results_of_different_settings(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"pytorch\[1\]: {key} is {value!r} but webgpu\[0\]"):
        combine(
            [webgpu_result()],
            [pytorch_result("fp32"), pytorch_result("fp16", **{key: value})],
            command="c",
            machine="m",
        )


def test_combine_needs_the_webgpu_result_with_robustness_on() -> None:
    with pytest.raises(ValueError, match="no WebGPU result with robustness on in webgpu\\[0\\]"):
        combine([webgpu_result(False)], [pytorch_result()], command="c", machine="m")


def test_combine_refuses_two_results_for_one_column() -> None:
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
            pytorch_result(),
            pytorch_result(),
            r"webgpu\[0\]: runtime is \"pytorch\", expected 'webgpu'",
        ),
        (webgpu_result(), pytorch_result(precision="bf16"), "precision must be fp32 or fp16"),
        (webgpu_result(robustness="yes"), pytorch_result(), "robustness must be true or false"),
        (
            webgpu_result(stages={"unet_step_ms": {"median": "fast"}}),
            pytorch_result(),
            r"webgpu\[0\]: stages.unet_step_ms.median: expected a non-negative number",
        ),
        (webgpu_result(stages={}), pytorch_result(), "stages must be an object with some of"),
        (
            webgpu_result(kernels=[{"name": "k", "calls": 1, "ms": math.nan, "share": 0.1}]),
            pytorch_result(),
            r"kernels\[0\].ms: expected a non-negative number",
        ),
    ],
)
def test_combine_names_the_result_that_is_malformed(
    webgpu: dict[str, Any], pytorch: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        combine([webgpu], [pytorch], command="c", machine="m")


# -- tables -------------------------------------------------------------------------------


def _rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_table_has_a_row_per_stage_and_a_column_per_result() -> None:
    rows = _rows(table(full_doc()))
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


def test_table_lists_the_top_kernels_by_time() -> None:
    markdown = table(full_doc())
    assert f"The top {TOP_KERNELS} of {len(KERNELS)} kernels of a UNet step" in markdown
    rows = _rows(markdown)
    assert rows["Kernel"] == ["Calls", "ms per UNet step", "Share"]
    kernel_rows = [name for name in rows if name.startswith("`")]
    assert kernel_rows == [f"`{name}`" for name in KERNELS[:TOP_KERNELS]]
    assert rows["`fused_conv2d_add_add`"] == ["1", "14.9", "28.6%"]


def test_table_leaves_out_what_was_not_measured() -> None:
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


def test_chart_is_well_formed_svg_with_one_bar_per_result_and_stage() -> None:
    svg = chart_svg(full_doc())
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


def test_chart_x_axis_is_logarithmic() -> None:
    svg = chart_svg(full_doc())
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


def test_chart_is_deterministic() -> None:
    doc = full_doc()
    assert chart_svg(doc) == chart_svg(copy.deepcopy(doc))
    assert kernels_svg(doc) == kernels_svg(copy.deepcopy(doc))


def test_chart_escapes_text() -> None:
    adapter = 'gpu <"A&B"> \x01'
    doc = combine([webgpu_result(adapter=adapter)], [pytorch_result()], command="c", machine="m")
    root = ET.fromstring(chart_svg(doc))
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert any('gpu <"A&B"> ' in t for t in texts)
    kernels = kernels_svg(doc)
    assert kernels is not None
    ET.fromstring(kernels)


def test_chart_leaves_out_stages_and_bars_that_were_not_measured() -> None:
    fp32 = pytorch_result()
    del fp32["stages"]["vae_decode_ms"]
    web = webgpu_result()
    del web["stages"]["vae_decode_ms"]
    doc = combine([web], [fp32], command="c", machine="m")
    found = bars(chart_svg(doc))
    assert len(found) == 2 * (len(STAGES) - 1)
    assert "vae_decode" not in {b.get("data-stage") for b in found}


def test_kernels_chart_has_a_bar_per_top_kernel_longest_first() -> None:
    svg = kernels_svg(full_doc())
    assert svg is not None
    found = bars(svg, "data-kernel")
    assert [b.get("data-kernel") for b in found] == KERNELS[:TOP_KERNELS]
    widths = [float(b.get("width", "")) for b in found]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] / widths[1] == pytest.approx(2, rel=0.01)  # linear: 1/1 vs 1/2


def test_no_kernels_chart_without_kernels() -> None:
    doc = combine([webgpu_result(kernels=[])], [pytorch_result()], command="c", machine="m")
    assert kernels_svg(doc) is None


# -- the page -----------------------------------------------------------------------------


def test_page_has_a_section_per_result_with_charts_tables_and_the_headline() -> None:
    doc = {**full_doc(), "name": "sd15-512"}
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


def test_page_flags_a_swiftshader_result() -> None:
    doc = combine(
        [webgpu_result(adapter="google swiftshader Vulkan")],
        [pytorch_result()],
        command="c",
        machine="m",
    )
    page = render_page([{**doc, "name": "smoke"}])
    assert "> Measured on SwiftShader (the CPU): for smoke testing only." in page


# -- wsd-web report -----------------------------------------------------------------------


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
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
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    inputs: dict[str, Path], tmp_path: Path
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
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
