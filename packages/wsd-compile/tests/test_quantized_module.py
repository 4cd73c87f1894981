"""Quantized weights in the SD 1.5 IRModule: built for the CPU (llvm), each model
function against diffusers' model whose weights were quantized and dequantized
the same way; the graph rewrite, the fp32 twin and the GPU lowering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tvm

from wsd_artifacts.quantization import SCHEMES
from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset
from wsd_capture.quantized import quantize_torch_model
from wsd_compile import WsdCompileError, build_pipeline_module, compile_sd15
from wsd_compile.kernels import webgpu_pipeline
from wsd_compile.quantized_graph import dequantize_recipe
from wsd_compile.webgpu import webgpu_target
from wsd_compile.widen import widen_to_fp32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_preset("tiny-sd15", tmp_path_factory.mktemp("preset") / "tiny-sd15")


def _captured(model_dir: Path) -> CapturedPipeline:
    return capture_sd15(load_sd15(model_dir))


@pytest.fixture(scope="module", params=["int8", "int4"])
def quantized(request: pytest.FixtureRequest, model_dir: Path, cpu_build: Any) -> tuple[str, Any]:
    module = build_pipeline_module(_captured(model_dir), quantize=request.param)
    return request.param, cpu_build(module)


def _inputs() -> dict[str, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return {
        "text_encoder": [torch.randint(0, 1000, (1, 77), generator=gen, dtype=torch.int32)],
        "unet": [
            torch.randn(2, 4, 8, 8, generator=gen),
            torch.tensor([421.0]),
            torch.randn(2, 77, 32, generator=gen),
        ],
    }


def _reference(model_dir: Path, scheme: str, name: str, args: list[torch.Tensor]) -> np.ndarray:
    pipe = load_sd15(model_dir)
    model = getattr(pipe, name)
    assert quantize_torch_model(model, SCHEMES[scheme]) > 0
    with torch.no_grad():
        out = model(args[0].long())[0] if name == "text_encoder" else model(*args).sample
    result: np.ndarray = out.numpy()
    return result


@pytest.mark.parametrize("name", ["text_encoder", "unet"])
def test_quantized_functions_match_diffusers_with_the_same_quantized_weights(
    quantized: tuple[str, Any], model_dir: Path, name: str
) -> None:
    scheme, built = quantized
    args = _inputs()[name]
    expected = _reference(model_dir, scheme, name, args)
    got = built(name, *[a.numpy() for a in args])[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


def test_the_build_quantizes_what_the_reference_quantizes(
    quantized: tuple[str, Any], model_dir: Path
) -> None:
    scheme, built = quantized
    pipe = load_sd15(model_dir)
    report = built.module.quantized
    for name in ("unet", "text_encoder"):
        assert report[name].tensors == quantize_torch_model(getattr(pipe, name), SCHEMES[scheme])
        assert report[name].bytes_after < report[name].bytes_before
    assert "vae_decode" not in report
    assert built.module.quantize == scheme


def test_an_fp16_quantized_module_widens_and_lowers_without_a_dequantize_kernel(
    model_dir: Path,
) -> None:
    module = build_pipeline_module(_captured(model_dir), precision="fp16", quantize="int4")
    recipes = [f for _, f in module.mod.functions_items() if dequantize_recipe(f) is not None]
    assert recipes
    widened = widen_to_fp32(module.mod)
    assert "float16" not in widened.script(show_meta=False)
    for mod in (module.mod, widened):
        lowered = webgpu_pipeline(webgpu_target())(mod)
        names = [gv.name_hint for gv in lowered.get_global_vars()]
        # Every dequantization was fused into the kernel that reads the weight.
        assert not [n for n in names if n.startswith("dequantize")], names
        kernels = [f for _, f in lowered.functions_items() if isinstance(f, tvm.tirx.PrimFunc)]
        packed = [f for f in kernels if any("uint32" in str(p.dtype) for p in f.params)]
        assert len(packed) >= len(recipes)


def test_an_unknown_quantization_is_refused_before_anything_loads(tmp_path: Path) -> None:
    refused = r"unknown quantization 'int3'; choose one of none, int8, int4"
    with pytest.raises(WsdCompileError, match=refused):
        compile_sd15(tmp_path / "no-such-model", out_dir=tmp_path / "out", quantize="int3")
    assert not (tmp_path / "out").exists()
