"""The SD 1.5 IRModule built for the CPU (llvm): every function against torch / numpy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tvm
from tvm import relax

from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset
from wsd_compile import PipelineModule, WsdCompileError, build_sd15_module
from wsd_compile.glue import MAX_TERMS, combine_name
from wsd_compile.webgpu import check_wgsl, webgpu_target, wgsl_sources

COMPONENTS = (
    "text_encoder",
    "unet",
    "vae_decode",
    "vae_decode_tile",
    "vae_encode",
    "vae_encode_tile",
)


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> CapturedPipeline:
    model_dir = write_preset("tiny-sd15", tmp_path_factory.mktemp("preset") / "tiny-sd15")
    return capture_sd15(load_sd15(model_dir))


class CpuModule:
    """The SD 1.5 functions return one tensor each: the conftest module's first output."""

    def __init__(self, built: Any) -> None:
        self.built = built
        self.module: PipelineModule = built.module

    def __call__(self, name: str, *args: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.built(name, *args)[0]
        return out


@pytest.fixture(scope="module")
def fp32(captured: CapturedPipeline, cpu_build: Any) -> CpuModule:
    return CpuModule(cpu_build(build_sd15_module(captured, precision="fp32")))


@pytest.fixture(scope="module")
def fp16(captured: CapturedPipeline, cpu_build: Any) -> CpuModule:
    return CpuModule(cpu_build(build_sd15_module(captured, precision="fp16")))


def component_inputs(captured: CapturedPipeline, name: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for spec in captured.components[name].inputs:
        if spec.dtype == "int32":
            out.append(torch.randint(0, 1000, spec.shape, generator=gen, dtype=torch.int32))
        elif spec.name == "timestep":
            out.append(torch.tensor([601.0]))
        else:
            out.append(torch.randn(spec.shape, generator=gen))
    return out


def torch_output(captured: CapturedPipeline, name: str, args: list[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        out = captured.components[name].program.module()(*args)
    tensor = out[0] if isinstance(out, tuple | list) else out
    result: np.ndarray = tensor.numpy()
    return result


@pytest.mark.parametrize("name", COMPONENTS)
def test_fp32_component_matches_torch(
    captured: CapturedPipeline, fp32: CpuModule, name: str
) -> None:
    args = component_inputs(captured, name)
    expected = torch_output(captured, name, args)
    got = fp32(name, *[a.numpy() for a in args])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


@pytest.mark.parametrize("name", COMPONENTS)
def test_fp16_component_stays_close_to_torch(
    captured: CapturedPipeline, fp16: CpuModule, name: str
) -> None:
    args = component_inputs(captured, name)
    expected = torch_output(captured, name, args)
    got = fp16(name, *[a.numpy() for a in args])
    assert got.dtype == np.float32  # inputs and outputs stay fp32
    scale = float(np.abs(expected).max())
    assert np.abs(got - expected).max() <= 2e-2 * scale


def test_fp16_weights_are_half_precision(fp16: CpuModule) -> None:
    dtypes = {str(p.dtype) for params in fp16.module.params.values() for p in params}
    assert "float16" in dtypes
    assert fp16.module.precision == "fp16"


def test_functions_describe_inputs_and_weights(fp32: CpuModule, captured: CapturedPipeline) -> None:
    functions = fp32.module.functions
    unet = functions["unet"]
    assert [t.name for t in unet.inputs] == ["sample", "timestep", "encoder_hidden_states"]
    assert unet.inputs[1].dtype == "float32"  # WGSL has no 64-bit integers
    assert unet.params == "unet"
    assert functions["text_encoder"].inputs[0].dtype == "int32"
    assert functions["cfg_combine"].params is None
    assert functions["image_to_rgba"].outputs[0].dtype == "uint32"
    assert len(fp32.module.params["unet"]) > 0
    # The tile decoder takes the whole decoder's weights, held once.
    assert functions["vae_decode_tile"].params == "vae_decode"
    assert functions["vae_decode_tile"].inputs[0].shape == (1, 4, 4, 4)
    assert "vae_decode_tile" not in fp32.module.params
    # So does the tile encoder the whole encoder's.
    assert functions["vae_encode_tile"].params == "vae_encode"
    assert [t.shape for t in functions["vae_encode_tile"].inputs] == [(1, 3, 32, 32), (1, 4, 4, 4)]
    assert "vae_encode_tile" not in fp32.module.params


def test_a_tile_graph_with_other_weights_is_refused(
    captured: CapturedPipeline, tmp_path: Path
) -> None:
    """The tile decoder must take the decoder's weights as they are: a capture
    whose tile graph was made from another VAE fails the build, naming both."""
    from wsd_capture.capture import export_vae_graphs

    pipe = load_sd15(write_preset("tiny-sd15", tmp_path / "tiny-sd15"))
    with torch.no_grad():
        pipe.vae.decoder.conv_in.weight += 1
    tile = next(g for g in export_vae_graphs(pipe.vae, (1, 4, 8, 8)) if g.name == "vae_decode_tile")
    components = {**captured.components, "vae_decode_tile": tile}
    with pytest.raises(WsdCompileError, match="vae_decode_tile does not take vae_decode's weights"):
        build_sd15_module(replace(captured, components=components))


def test_cfg_embeddings_put_the_negative_prompt_first(fp32: CpuModule) -> None:
    shape = fp32.module.functions["cfg_embeddings"].inputs[0].shape
    neg, pos = np.full(shape, -1, np.float32), np.full(shape, 2, np.float32)
    out = fp32("cfg_embeddings", neg, pos)
    np.testing.assert_array_equal(out, np.concatenate([neg, pos]))


def test_unet_input_scales_and_duplicates(fp32: CpuModule) -> None:
    latents = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    out = fp32("unet_input", latents, np.array([0.5], np.float32))
    np.testing.assert_array_equal(out, np.concatenate([latents * 0.5, latents * 0.5]))


def test_cfg_combine_is_diffusers_guidance(fp32: CpuModule) -> None:
    pred = np.random.default_rng(1).standard_normal((2, 4, 8, 8)).astype(np.float32)
    out = fp32("cfg_combine", pred, np.array([7.5], np.float32))
    expected = pred[:1] + np.float32(7.5) * (pred[1:] - pred[:1])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_mask_blend_is_diffusers_inpainting_blend(fp32: CpuModule) -> None:
    rng = np.random.default_rng(4)
    image, latents = rng.standard_normal((2, 1, 4, 8, 8)).astype(np.float32)
    mask = (rng.random((1, 1, 8, 8)) < 0.5).astype(np.float32)
    out = fp32("mask_blend", image, latents, mask)
    np.testing.assert_array_equal(out, (1 - mask) * image + mask * latents)
    # An ordinary UNet's build has no inpainting checkpoint's input glue.
    assert "inpaint_unet_input" not in fp32.module.functions


def test_inpaint_unet_input_joins_latents_mask_and_masked_image() -> None:
    from wsd_compile.glue import GlueShapes, glue_module

    shapes = GlueShapes(latent=(1, 4, 8, 8), text=(1, 77, 32), image=(1, 3, 64, 64))
    nine = replace(shapes, unet_channels=9)
    four = {g.name_hint for g in glue_module(["inpaint"], shapes).functions}
    assert "inpaint_unet_input" not in four
    vm = relax.VirtualMachine(tvm.compile(glue_module(["inpaint"], nine), target="llvm"), tvm.cpu())
    rng = np.random.default_rng(5)
    latents, masked = rng.standard_normal((2, 1, 4, 8, 8)).astype(np.float32)
    mask = (rng.random((1, 1, 8, 8)) < 0.5).astype(np.float32)
    args = [latents, np.array([0.5], np.float32), mask, masked]
    out = vm["inpaint_unet_input"](*[tvm.runtime.tensor(a) for a in args]).numpy()
    one = np.concatenate([latents * 0.5, mask, masked], axis=1)
    np.testing.assert_array_equal(out, np.concatenate([one, one]))


def test_clamp_is_torch_clamp(fp32: CpuModule) -> None:
    x = np.random.default_rng(3).normal(0, 2, (1, 4, 8, 8)).astype(np.float32)
    out = fp32("clamp", x, np.array([1.5], np.float32))
    np.testing.assert_array_equal(out, torch.from_numpy(x).clamp(-1.5, 1.5).numpy())


@pytest.mark.parametrize("terms", range(1, MAX_TERMS + 1))
def test_combine_is_a_linear_combination(fp32: CpuModule, terms: int) -> None:
    rng = np.random.default_rng(terms)
    xs = [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(terms)]
    coeffs = rng.standard_normal(terms).astype(np.float32)
    out = fp32(combine_name(terms), *xs, coeffs)
    expected = sum(np.float64(c) * x for c, x in zip(coeffs, xs, strict=True))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_image_to_rgba_is_diffusers_postprocess(fp32: CpuModule) -> None:
    shape = fp32.module.functions["image_to_rgba"].inputs[0].shape
    image = np.random.default_rng(2).uniform(-1.3, 1.3, shape).astype(np.float32)
    pixels = fp32("image_to_rgba", image).view(np.uint8).reshape(shape[2], shape[3], 4)
    expected = (np.clip(image[0] / 2 + 0.5, 0, 1) * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(pixels[..., :3], expected.transpose(1, 2, 0))
    assert (pixels[..., 3] == 255).all()


def test_unknown_precision_is_refused(captured: CapturedPipeline) -> None:
    with pytest.raises(WsdCompileError, match="unknown precision 'int4'; choose one of fp32, fp16"):
        build_sd15_module(captured, precision="int4")


def test_bool_storage_is_caught_before_linking() -> None:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4,), "float32"))
    with bb.function("negative", [x]):
        bb.emit_func_output(bb.emit(relax.op.less(x, relax.const(0.0))))
    sources = wgsl_sources(tvm.compile(bb.get(), target=webgpu_target()).mod)
    with pytest.raises(WsdCompileError, match="i8 storage, which browsers reject"):
        check_wgsl(sources)
