"""Benchmark reports: combining results and the tables.

The sample results come from conftest.py (an fp16 build's too); the charts and the
page are tested in test_bench_charts.py and ``wsd-web report`` itself in
test_bench_report_cli.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from wsd_web.bench.page import table
from wsd_web.bench.results import STAGES, TOP_KERNELS, BenchReportError, combine

ResultFactory = Callable[..., dict[str, Any]]
Ms = Callable[[dict[str, Any], str], float]


# -- combine ------------------------------------------------------------------------------


def test_combine_keeps_each_result_and_the_settings(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, full_doc: dict[str, Any]
) -> None:
    doc = full_doc
    assert doc["version"] == 2
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
    [run] = doc["webgpu_runs"]
    assert run["webgpu"] == webgpu_result(True)
    assert run["webgpu_no_robustness"] == webgpu_result(False)
    assert (run["precision"], run["kernel_path"]) == ("fp32", "fp32")
    assert run["features"] == webgpu_result()["features"]
    assert run["dawn_toggles"] is None  # the sample result predates the field
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
    [run] = doc["webgpu_runs"]
    assert run["ratios"] == pytest.approx(expected)
    for stage in ("unet_step", "generation", "vae_decode"):
        for baseline in ("pytorch_fp32", "pytorch_fp16"):
            name = f"{stage}_vs_{baseline}"
            assert run[f"ratio_{name}"] == pytest.approx(expected[name])


def test_ratios_only_for_stages_both_sides_measured(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    fp16 = pytorch_result("fp16")
    del fp16["stages"]["scheduler_step_ms"]
    del fp16["stages"]["vae_decode_ms"]
    doc = combine([webgpu_result()], [fp16], command="c", machine="m")
    [run] = doc["webgpu_runs"]
    assert doc["pytorch_fp32"] is None and run["webgpu_no_robustness"] is None
    assert sorted(run["ratios"]) == sorted(
        f"{stage}_vs_pytorch_fp16"
        for stage, _ in STAGES
        if stage not in ("scheduler_step", "vae_decode")
    )
    assert run["ratio_unet_step_vs_pytorch_fp32"] is None
    assert run["ratio_vae_decode_vs_pytorch_fp16"] is None
    assert run["ratio_unet_step_vs_pytorch_fp16"] == pytest.approx(61.3 / (18.2 * 0.4))


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
    with pytest.raises(
        ValueError,
        match=r"no WebGPU fp32 \(fp32 kernels\) result with robustness on in webgpu\[0\]",
    ):
        combine([webgpu_result(False)], [pytorch_result()], command="c", machine="m")


def test_combine_refuses_two_results_for_one_column(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory
) -> None:
    with pytest.raises(
        ValueError, match=r"webgpu\[0\] and webgpu\[1\] are both WebGPU fp32 \(fp32 kernels\)"
    ):
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
        (("webgpu", {"vae_kernels": {"k": 1}}), {}, r"vae_kernels must be a list"),
        (
            ("webgpu", {"vae_kernels": [{"calls": 1, "ms": 1.0, "share": 1.0}]}),
            {},
            r"vae_kernels\[0\]: expected an object with a name",
        ),
        (
            ("webgpu", {"text_encoder_kernels": [{"name": "k", "calls": 1, "ms": 1.0}]}),
            {},
            r"text_encoder_kernels\[0\].share: expected a non-negative number",
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


def test_combine_makes_a_record_per_webgpu_build_fp32_first(
    two_builds: dict[str, Any], two_doc: dict[str, Any]
) -> None:
    b = two_builds
    assert two_doc["version"] == 2
    assert "webgpu" not in two_doc and "ratios" not in two_doc
    assert (two_doc["pytorch_fp32"], two_doc["pytorch_fp16"]) == (
        b["pytorch_fp32"],
        b["pytorch_fp16"],
    )
    fp32, fp16 = two_doc["webgpu_runs"]
    assert (fp32["webgpu"], fp32["webgpu_no_robustness"]) == (b["fp32"], b["fp32_off"])
    assert (fp16["webgpu"], fp16["webgpu_no_robustness"]) == (b["fp16"], b["fp16_off"])
    assert [(r["precision"], r["kernel_path"]) for r in (fp32, fp16)] == [
        ("fp32", "fp32"),
        ("fp16", "shader-f16"),
    ]
    assert fp16["features"] == ["shader-f16", "subgroups", "timestamp-query"]
    assert fp16["dawn_toggles"] == ["enable-dawn-features=vulkan_enable_f16_on_nvidia"]
    assert fp32["features"] == b["fp32"]["features"] and fp32["dawn_toggles"] is None
    json.dumps(two_doc, allow_nan=False)


def test_each_webgpu_record_has_its_ratios_to_pytorch_fp32_and_fp16(
    two_builds: dict[str, Any], two_doc: dict[str, Any], ms: Ms
) -> None:
    b = two_builds
    for run, on in zip(two_doc["webgpu_runs"], (b["fp32"], b["fp16"]), strict=True):
        expected = {
            f"{stage}_vs_{baseline}": ms(on, stage) / ms(b[baseline], stage)
            for stage, _ in STAGES
            for baseline in ("pytorch_fp32", "pytorch_fp16")
        }
        assert run["ratios"] == pytest.approx(expected)
        for stage in ("unet_step", "generation", "vae_decode"):
            for baseline in ("pytorch_fp32", "pytorch_fp16"):
                ratio = run[f"ratio_{stage}_vs_{baseline}"]
                assert ratio == pytest.approx(ms(on, stage) / ms(b[baseline], stage))
    fp32, fp16 = two_doc["webgpu_runs"]
    assert fp16["ratio_unet_step_vs_pytorch_fp16"] < fp32["ratio_unet_step_vs_pytorch_fp16"]


def test_kernel_path_comes_from_the_result_where_it_says(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, fp16_result: ResultFactory
) -> None:
    matrix = fp16_result(webgpu_result, kernel_path="subgroup-matrix", build_id="89ab")
    doc = combine(
        [matrix, fp16_result(webgpu_result), webgpu_result()],
        [pytorch_result("fp16")],
        command="c",
        machine="m",
    )
    runs = doc["webgpu_runs"]
    assert [(r["precision"], r["kernel_path"]) for r in runs] == [
        ("fp32", "fp32"),
        ("fp16", "shader-f16"),
        ("fp16", "subgroup-matrix"),
    ]
    assert runs[2]["webgpu"] is matrix
    assert _rows(table(doc))["Median"] == [
        "WebGPU fp32",
        "WebGPU fp16",
        "WebGPU fp16 (subgroup-matrix path)",
        "PyTorch fp16",
    ]


def test_builds_with_quantized_weights_get_records_of_their_own(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, fp16_result: ResultFactory
) -> None:
    int8 = fp16_result(webgpu_result, build_id="89ab", quantize="int8")
    doc = combine(
        [int8, fp16_result(webgpu_result)], [pytorch_result("fp16")], command="c", machine="m"
    )
    runs = doc["webgpu_runs"]
    assert [(r["precision"], r["quantize"]) for r in runs] == [("fp16", "none"), ("fp16", "int8")]
    assert runs[1]["webgpu"] is int8
    assert _rows(table(doc))["Median"] == ["WebGPU fp16", "WebGPU fp16 int8", "PyTorch fp16"]
    with pytest.raises(BenchReportError, match=r"quantize is 'int3': expected one of none, int8"):
        combine(
            [fp16_result(webgpu_result, quantize="int3")],
            [pytorch_result("fp16")],
            command="c",
            machine="m",
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "sdxl"}, r"webgpu\[2\]: kind is 'sdxl' but webgpu\[0\] has 'sd15'"),
        ({"height": 768}, r"webgpu\[2\]: height is 768 but webgpu\[0\] has 512"),
        ({"width": 768}, r"webgpu\[2\]: width is 768 but webgpu\[0\] has 512"),
        ({"steps": 30}, r"webgpu\[2\]: steps is 30 but webgpu\[0\] has 20"),
        ({"adapter": "other gpu"}, r"webgpu\[2\]: adapter is 'other gpu' but .*same machine"),
        ({"precision": "bf16"}, r"webgpu\[2\]: precision must be fp32 or fp16"),
        ({"kernel_path": 16}, r"webgpu\[2\]: kernel_path must be a string"),
        ({"features": "shader-f16"}, r"webgpu\[2\]: features: expected a list of strings"),
    ],
)
def test_combine_refuses_builds_that_do_not_go_together(
    webgpu_result: ResultFactory,
    pytorch_result: ResultFactory,
    changes: dict[str, Any],
    message: str,
    fp16_result: ResultFactory,
) -> None:
    fp16 = fp16_result(webgpu_result, **changes)
    with pytest.raises(ValueError, match=message):
        combine(
            [webgpu_result(True), webgpu_result(False), fp16],
            [pytorch_result()],
            command="c",
            machine="m",
        )


def test_combine_refuses_two_builds_with_one_name(
    webgpu_result: ResultFactory, pytorch_result: ResultFactory, fp16_result: ResultFactory
) -> None:
    """Two fp16 builds with the same kernel path would be one column: one of them is wrong."""
    with pytest.raises(
        ValueError, match=r"webgpu\[1\]: build_id is 'other' but webgpu\[0\] has '4567cdef'"
    ):
        combine(
            [fp16_result(webgpu_result), fp16_result(webgpu_result, False, build_id="other")],
            [pytorch_result()],
            command="c",
            machine="m",
        )
    with pytest.raises(
        ValueError, match=r"no WebGPU fp16 \(shader-f16 kernels\) result with robustness on"
    ):
        combine(
            [webgpu_result(), fp16_result(webgpu_result, False)],
            [pytorch_result()],
            command="c",
            machine="m",
        )


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


def test_table_of_two_builds_has_their_columns_and_a_ratio_table(
    two_builds: dict[str, Any], two_doc: dict[str, Any], ms: Ms, shown: Callable[[float], str]
) -> None:
    b = two_builds
    markdown = table(two_doc)
    medians, ratios = markdown.split("\n\n")[:2]
    rows = _rows(medians)
    assert rows["Median"] == [
        "WebGPU fp32",
        "WebGPU fp32 (no robustness)",
        "WebGPU fp16",
        "WebGPU fp16 (no robustness)",
        "PyTorch fp32",
        "PyTorch fp16",
    ]
    order = ("fp32", "fp32_off", "fp16", "fp16_off", "pytorch_fp32", "pytorch_fp16")
    unet = [ms(b[key], "unet_step") for key in order]
    assert rows["UNet step (ms)"] == [f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in unet]
    rows = _rows(ratios)
    assert rows["WebGPU / PyTorch"] == [
        "WebGPU fp32 / PyTorch fp32",
        "WebGPU fp32 / PyTorch fp16",
        "WebGPU fp16 / PyTorch fp32",
        "WebGPU fp16 / PyTorch fp16",
    ]
    for stage, label in (("unet_step", "UNet step"), ("vae_decode", "VAE decode")):
        assert rows[label] == [
            shown(ms(b[web], stage) / ms(b[torch], stage))
            for web in ("fp32", "fp16")
            for torch in ("pytorch_fp32", "pytorch_fp16")
        ]
    assert rows["20-step generation"][3] == shown(
        ms(b["fp16"], "generation") / ms(b["pytorch_fp16"], "generation")
    )
    assert "WebGPU fp32 (fp32 kernels), the top 15 of 18 kernels:" in markdown
    assert "WebGPU fp16 (shader-f16 kernels), the top 15 of 18 kernels:" in markdown
    assert "`fused_conv2d_add_add_f16`" in markdown
