"""The SDXL IRModule built for the CPU (llvm): each component against diffusers' own modules.

The reference is the pipeline's torch modules called as StableDiffusionXLPipeline
calls them (``output_hidden_states=True`` and ``hidden_states[-2]``, the
projected pooled output ``text_embeds``, the UNet with ``added_cond_kwargs``,
``vae.decode(latents / scaling_factor)``), not the captured graphs, so a capture
that changed the semantics would fail here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import tvm
from diffusers import StableDiffusionXLPipeline

from wsd_capture import CapturedPipeline, capture_sdxl, load_sdxl, write_preset
from wsd_compile import (
    WsdCompileError,
    build_pipeline_module,
    build_sd15_module,
    build_sdxl_module,
)
from wsd_compile.webgpu import check_wgsl, webgpu_target, wgsl_sources

CpuModule = Any  # conftest.CpuModule: ``module(name, *arrays) -> list of arrays``

PROMPTS = ("a photo of an astronaut riding a horse on the moon", "")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> StableDiffusionXLPipeline:
    model_dir = write_preset("tiny-sdxl", tmp_path_factory.mktemp("preset") / "tiny-sdxl")
    return load_sdxl(model_dir)


@pytest.fixture(scope="module")
def captured(pipe: StableDiffusionXLPipeline) -> CapturedPipeline:
    return capture_sdxl(pipe)


@pytest.fixture(scope="module")
def fp32(captured: CapturedPipeline, cpu_build: Any) -> CpuModule:
    module: CpuModule = cpu_build(build_sdxl_module(captured, precision="fp32"))
    return module


@pytest.fixture(scope="module")
def fp16(captured: CapturedPipeline, cpu_build: Any) -> CpuModule:
    module: CpuModule = cpu_build(build_sdxl_module(captured, precision="fp16"))
    return module


def token_ids(tokenizer: Any, text: str) -> torch.Tensor:
    ids: torch.Tensor = tokenizer(
        text, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    return ids


def pooled_mask(ids: torch.Tensor, rule: str, eos_token_id: int) -> np.ndarray:
    """One-hot at the token transformers' CLIP pools (the page computes the same)."""
    row = ids[0].tolist()
    index = row.index(max(row)) if rule == "argmax" else row.index(eos_token_id)
    mask = np.zeros((1, len(row)), np.float32)
    mask[0, index] = 1.0
    return mask


def close(got: np.ndarray, expected: np.ndarray, rel: float) -> float:
    assert got.shape == expected.shape
    err = float(np.abs(got - expected).max())
    assert err <= rel * max(1.0, float(np.abs(expected).max())), err
    return err


@pytest.mark.parametrize("prompt", PROMPTS)
def test_text_encoders_match_diffusers(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline, fp32: CpuModule, prompt: str
) -> None:
    cond = captured.metadata.conditioning
    assert cond is not None and cond.pooled_token == "argmax"  # eos_token_id == 2, as SDXL's
    ids_1, ids_2 = token_ids(pipe.tokenizer, prompt), token_ids(pipe.tokenizer_2, prompt)
    assert int(ids_2[0, -1]) == pipe.tokenizer_2.pad_token_id == 0  # pads with "!", not EOS
    with torch.no_grad():
        ref_1 = pipe.text_encoder(ids_1, output_hidden_states=True).hidden_states[-2]
        ref_2 = pipe.text_encoder_2(ids_2, output_hidden_states=True)
    (hidden_1,) = fp32("text_encoder", ids_1.int().numpy())
    close(hidden_1, ref_1.numpy(), 1e-4)
    mask = pooled_mask(ids_2, cond.pooled_token, pipe.tokenizer_2.eos_token_id)
    hidden_2, pooled = fp32("text_encoder_2", ids_2.int().numpy(), mask)
    close(hidden_2, ref_2.hidden_states[-2].numpy(), 1e-4)
    close(pooled, ref_2.text_embeds.numpy(), 1e-4)
    (joined,) = fp32("text_concat", hidden_1, hidden_2)
    np.testing.assert_array_equal(joined, np.concatenate([hidden_1, hidden_2], axis=-1))


def test_pipeline_encode_prompt_is_reproduced(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline, fp32: CpuModule
) -> None:
    """The glue reproduces encode_prompt: concatenated states, CFG order, zeros for no negative."""
    prompt = PROMPTS[0]
    cond = captured.metadata.conditioning
    assert cond is not None and cond.force_zeros_for_empty_prompt
    with torch.no_grad():
        embeds, neg_embeds, pooled, neg_pooled = pipe.encode_prompt(
            prompt, device="cpu", do_classifier_free_guidance=True, negative_prompt=None
        )
    assert not neg_embeds.any() and not neg_pooled.any()
    ids_2 = token_ids(pipe.tokenizer_2, prompt)
    (hidden_1,) = fp32("text_encoder", token_ids(pipe.tokenizer, prompt).int().numpy())
    mask = pooled_mask(ids_2, cond.pooled_token, pipe.tokenizer_2.eos_token_id)
    hidden_2, pooled_out = fp32("text_encoder_2", ids_2.int().numpy(), mask)
    (joined,) = fp32("text_concat", hidden_1, hidden_2)
    zeros = np.zeros_like(joined)
    (pair,) = fp32("cfg_embeddings", zeros, joined)
    close(pair, torch.cat([neg_embeds, embeds]).numpy(), 1e-4)
    (pooled_pair,) = fp32("cfg_text_embeds", np.zeros_like(pooled_out), pooled_out)
    close(pooled_pair, torch.cat([neg_pooled, pooled]).numpy(), 1e-4)


def unet_inputs(captured: CapturedPipeline) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    specs = {t.name: t for t in captured.components["unet"].inputs}
    time_ids = np.array([[1024, 768, 32, 0, 64, 64], [64, 64, 0, 0, 64, 64]], np.float32)
    return {
        "sample": torch.randn(specs["sample"].shape, generator=gen).numpy(),
        "timestep": np.array([601.0], np.float32),
        "encoder_hidden_states": torch.randn(
            specs["encoder_hidden_states"].shape, generator=gen
        ).numpy(),
        "text_embeds": torch.randn(specs["text_embeds"].shape, generator=gen).numpy(),
        "time_ids": time_ids,
    }


def unet_reference(pipe: StableDiffusionXLPipeline, x: dict[str, np.ndarray]) -> np.ndarray:
    t = {k: torch.from_numpy(v) for k, v in x.items()}
    added = {"text_embeds": t["text_embeds"], "time_ids": t["time_ids"]}
    with torch.no_grad():
        out = pipe.unet(
            t["sample"], t["timestep"], t["encoder_hidden_states"], added_cond_kwargs=added
        ).sample
    result: np.ndarray = out.numpy()
    return result


def test_unet_with_added_conditioning_matches_diffusers(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline, fp32: CpuModule
) -> None:
    x = unet_inputs(captured)
    expected = unet_reference(pipe, x)
    (got,) = fp32("unet", *x.values())
    close(got, expected, 1e-4)
    # The added conditioning reaches the output: other time ids, another prediction.
    y = dict(x, time_ids=x["time_ids"][::-1].copy())
    (other,) = fp32("unet", *y.values())
    assert np.abs(other - got).max() > 1e-2


def test_vae_decode_matches_diffusers(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline, fp32: CpuModule
) -> None:
    latents = torch.randn(
        captured.metadata.latent_shape, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        expected = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample.numpy()
    (got,) = fp32("vae_decode", latents.numpy())
    close(got, expected, 1e-4)


def test_fp16_keeps_the_upcast_vae_in_fp32(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline, fp16: CpuModule
) -> None:
    module = fp16.module
    assert module.component_precision == {
        "text_encoder": "fp16",
        "text_encoder_2": "fp16",
        "unet": "fp16",
        "vae_decode": "fp32",
        "vae_decode_tile": "fp32",
        "vae_encode": "fp32",
        "vae_encode_tile": "fp32",
    }
    assert {str(p.dtype) for p in module.params["vae_decode"]} == {"float32"}
    assert "float16" in {str(p.dtype) for p in module.params["unet"]}
    x = unet_inputs(captured)
    (got,) = fp16("unet", *x.values())
    expected = unet_reference(pipe, x)
    close(got, expected, 2e-2)


def test_fp16_stores_the_token_embeddings_in_fp16(
    pipe: StableDiffusionXLPipeline, fp16: CpuModule, fp32: CpuModule
) -> None:
    # ToMixedPrecision leaves take() in float32; half_embedding_tables stores
    # the tables as diffusers' fp16 pipeline has them, and the fp32 build as is.
    for name, encoder in (
        ("text_encoder", pipe.text_encoder),
        ("text_encoder_2", pipe.text_encoder_2),
    ):
        table = encoder.get_input_embeddings().weight.detach().numpy()
        half = [a for a in fp16.module.params[name] if a.shape == table.shape]
        assert len(half) == 1 and half[0].dtype == np.float16, name
        assert np.array_equal(half[0], table.astype(np.float16)), name
        full = [a for a in fp32.module.params[name] if a.shape == table.shape]
        assert len(full) == 1 and np.array_equal(full[0], table), name


def test_functions_describe_the_sdxl_signature(fp32: CpuModule) -> None:
    functions = fp32.module.functions
    assert [t.name for t in functions["unet"].inputs] == [
        "sample",
        "timestep",
        "encoder_hidden_states",
        "text_embeds",
        "time_ids",
    ]
    te2 = functions["text_encoder_2"]
    assert [t.name for t in te2.inputs] == ["input_ids", "pooled_mask"]
    assert [t.name for t in te2.outputs] == ["hidden_states", "text_embeds"]
    assert te2.params == "text_encoder_2"
    assert functions["text_concat"].outputs[0].shape == (1, 77, 96)
    assert functions["cfg_text_embeds"].outputs[0].shape == (2, 64)


def test_kinds_are_not_mixed_up(captured: CapturedPipeline) -> None:
    with pytest.raises(WsdCompileError, match="is sdxl, not sd15"):
        build_sd15_module(captured)


def test_webgpu_shaders_use_only_wgsl_storage_types(captured: CapturedPipeline) -> None:
    module = build_sdxl_module(captured)
    sources = wgsl_sources(tvm.compile(module.mod, target=webgpu_target()).mod)
    assert sources
    check_wgsl(sources)


def test_no_unet_weight_is_stored_once_per_batch_entry(fp32: CpuModule) -> None:
    # SDXL's proj_in/proj_out (use_linear_projection) reach the graph as a bmm of
    # the weight broadcast to the CFG batch; stored as a 2-D weight, matmul broadcasts it.
    shapes = {p.shape for p in fp32.module.params["unet"]}
    assert not [s for s in shapes if len(s) == 3], shapes


def test_unbroadcast_keeps_a_broadcast_that_widens_the_batch() -> None:
    from tvm import relax

    from wsd_compile.pipeline_module import unbroadcast_matmul_weights

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 16, 8), "float32"))
    one = relax.Var("one", relax.TensorType((1, 16, 8), "float32"))
    w = relax.Var("w", relax.TensorType((8, 4), "float32"))
    with bb.function("main", [x, one, w]):
        with bb.dataflow():
            wide = bb.emit(relax.op.broadcast_to(w, (2, 8, 4)))
            same = bb.emit(relax.op.matmul(x, wide))
            widened = bb.emit(relax.op.matmul(one, wide))
            out = bb.emit_output(relax.Tuple([same, widened]))
        bb.emit_func_output(out)
    func = unbroadcast_matmul_weights(bb.get()["main"])
    text = func.script(show_meta=False)
    assert "R.matmul(x, w" in text  # the batch it broadcast to is x's own: dropped
    assert text.count("R.broadcast_to") == 1  # kept for the (1, 16, 8) operand


def test_an_int4_build_quantizes_what_the_reference_quantizes(
    pipe: StableDiffusionXLPipeline, captured: CapturedPipeline
) -> None:
    import copy

    from wsd_artifacts.quantization import SCHEMES
    from wsd_capture.quantized import quantize_torch_model

    module = build_pipeline_module(captured, precision="fp16", quantize="int4")
    for name in ("unet", "text_encoder_2"):
        model = copy.deepcopy(getattr(pipe, name))
        quantized = quantize_torch_model(model, SCHEMES["int4"], build_precision="fp16")
        assert module.quantized[name].tensors == quantized, name
    # The first encoder's last layer is not in the graph: SDXL reads the penultimate state.
    assert (
        0
        < module.quantized["text_encoder"].tensors
        < quantize_torch_model(copy.deepcopy(pipe.text_encoder), SCHEMES["int4"])
    )
