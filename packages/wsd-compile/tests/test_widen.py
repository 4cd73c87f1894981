"""The fp32 kernel path of an fp16 build (``widen_to_fp32``): the fp16 module with
every float16 made float32 takes the fp16 build's weights as they are and
computes, on the CPU, close to what torch computes in float32 with the weights
rounded to fp16 (the fp16 build keeps some weights, e.g. the norms', in fp32),
several times closer to the fp32 model than the fp16 arithmetic is."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from tvm import relax

from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset
from wsd_compile import PipelineModule, WsdCompileError, build_sd15_module
from wsd_compile.paths import planned_paths
from wsd_compile.webgpu import check_no_f16
from wsd_compile.widen import widen_to_fp32

COMPONENTS = ("text_encoder", "unet", "vae_decode")


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> CapturedPipeline:
    model_dir = write_preset("tiny-sd15", tmp_path_factory.mktemp("preset") / "tiny-sd15")
    return capture_sd15(load_sd15(model_dir))


@pytest.fixture(scope="module")
def fp16(captured: CapturedPipeline) -> PipelineModule:
    return build_sd15_module(captured, precision="fp16")


@pytest.fixture(scope="module")
def widened(fp16: PipelineModule, cpu_build: Any) -> Any:
    """The widened module on the CPU, fed the fp16 build's weights widened to float32."""
    params = {c: [a.astype(np.float32) for a in arrays] for c, arrays in fp16.params.items()}
    module = PipelineModule(widen_to_fp32(fp16.mod), params, fp16.functions, "fp32")
    return cpu_build(module)


def _inputs(captured: CapturedPipeline, name: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for spec in captured.components[name].inputs:
        if spec.dtype == "int32":
            out.append(torch.randint(0, 1000, spec.shape, generator=gen, dtype=torch.int32))
        elif spec.name == "timestep":
            out.append(torch.tensor([421.0]))
        else:
            out.append(torch.randn(spec.shape, generator=gen))
    return out


def _torch_with_fp16_weights(captured: CapturedPipeline, name: str, args: list[Any]) -> np.ndarray:
    """The component in float32 with every floating weight rounded to fp16 (a copy)."""
    model = copy.deepcopy(captured.components[name].program.module())
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
        out = model(*args)
    result: np.ndarray = (out[0] if isinstance(out, tuple | list) else out).numpy()
    return result


def test_no_float16_is_left_and_the_signatures_keep_their_order(fp16: PipelineModule) -> None:
    wide = widen_to_fp32(fp16.mod)
    assert "float16" not in wide.script(show_meta=False)
    for name in COMPONENTS:
        before, after = fp16.mod[name], wide[name]
        assert len(before.params) == len(after.params)
        weights_before, weights_after = before.params[-1].ty.fields, after.params[-1].ty.fields
        assert [tuple(t.shape.values) for t in weights_before] == [
            tuple(t.shape.values) for t in weights_after
        ]
        assert {str(t.dtype) for t in weights_after} == {"float32"}
    assert "float16" in {str(a.dtype) for arrays in fp16.params.values() for a in arrays}


@pytest.mark.parametrize("name", COMPONENTS)
def test_widened_component_is_torch_in_float32_with_fp16_weights(
    captured: CapturedPipeline, widened: Any, name: str
) -> None:
    args = _inputs(captured, name)
    rounded = _torch_with_fp16_weights(captured, name, args)
    with torch.no_grad():
        out = captured.components[name].program.module()(*args)
    exact = (out[0] if isinstance(out, tuple | list) else out).numpy()
    got = widened(name, *[a.numpy() for a in args])[0]
    assert got.dtype == np.float32 and got.shape == exact.shape
    scale = float(np.abs(exact).max())
    # Measured: 3.6e-4, 7e-5, 3e-5 of scale against torch with fp16 weights;
    # 5.7e-4, 1.9e-4, 8.5e-4 against fp32 torch, where the fp16 build is
    # 2.5e-3, 5.8e-3, 8.0e-3 away.
    assert np.abs(got - rounded).max() <= 5e-4 * scale
    assert np.abs(got - exact).max() <= 1e-3 * scale


def test_the_widened_module_fuses_attention_as_the_fp16_one_does(fp16: PipelineModule) -> None:
    """A dropped cast must not leave an alias between the ops attention fusion matches:
    the fp32 path fuses every attention the fp16 path fuses (no score matrix in memory)."""
    from wsd_compile.kernels.attention import fuse_attention_pass

    def softmaxes(mod: Any) -> int:
        return str(fuse_attention_pass(min_bytes=0)(mod)["unet"]).count("nn.softmax")

    assert str(fp16.mod["unet"]).count("nn.softmax") > 0
    assert softmaxes(widen_to_fp32(fp16.mod)) == softmaxes(fp16.mod) == 0


def test_an_fp16_build_plans_the_fp32_path_after_its_own() -> None:
    names = [(p.name, p.library, p.requires, p.widen_f16_weights) for p in planned_paths("fp16")]
    assert names == [
        ("shader-f16", "model.wasm", ("shader-f16",), False),
        ("fp32", "model-fp32.wasm", (), True),
    ]
    assert [p.name for p in planned_paths("fp16", fp32_fallback=False)] == ["shader-f16"]
    assert [p.name for p in planned_paths("fp32")] == ["fp32"]


def test_the_subgroup_matrix_path_asks_for_32_kib_of_workgroup_memory_only_with_tiles() -> None:
    [plain, *_] = planned_paths("fp16", subgroup_matrix=True)
    [tiled, *_] = planned_paths("fp16", subgroup_matrix=True, workgroup_tiles=True)
    assert plain.name == tiled.name == "subgroup-matrix"
    assert "workgroup-storage-32k" not in plain.requires
    assert tiled.requires == (*plain.requires, "workgroup-storage-32k")


def test_a_shader_with_f16_is_refused_for_the_fp32_path() -> None:
    check_no_f16(["@group(0) @binding(0) var<storage, read> a : array<f32>;"])
    with pytest.raises(WsdCompileError, match="fp32 kernel path uses f16"):
        check_no_f16(["enable f16;\n@group(0) @binding(0) var<storage> a : array<f16>;"])


def test_float16_named_only_in_attributes_is_widened_too() -> None:
    """An op whose float16 result comes from its attributes alone (no tensor input)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4,), "float32"))
    with bb.function("main", [x]):
        # ones(dtype=float16) has no tensor input: only its attributes say float16.
        out = bb.emit(relax.op.add(relax.op.astype(x, "float16"), relax.op.ones((4,), "float16")))
        bb.emit_func_output(out)
    wide = widen_to_fp32(bb.get())
    assert "float16" not in wide.script(show_meta=False)
