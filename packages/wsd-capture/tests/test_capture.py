"""capture_sd15: three fp32 graphs at fixed shapes that compute what the pipeline computes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from wsd_capture import (
    VAE_TILE_MAX,
    CapturedPipeline,
    CaptureError,
    PipelineMetadata,
    TensorSpec,
    capture_sd15,
    capture_sdxl,
    load_capture,
    load_sd15,
    load_sdxl,
    save_capture,
    vae_tile_shape,
    write_preset,
)


def _ids(pipe: StableDiffusionPipeline, prompt: str) -> torch.Tensor:
    ids: torch.Tensor = pipe.tokenizer(
        prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    ).input_ids
    return ids


def _inputs(pipe: StableDiffusionPipeline) -> dict[str, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    return {
        "text_encoder": (_ids(pipe, "a photo of a cat").to(torch.int32),),
        "unet": (
            torch.randn(2, 4, 8, 8, generator=g),
            torch.tensor([981.0]),
            torch.randn(2, 77, 32, generator=g),
        ),
        "vae_decode": (torch.randn(1, 4, 8, 8, generator=g),),
    }


def _run(captured: CapturedPipeline, name: str, *args: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = captured.components[name].program.module()(*args)
    return out


def test_the_components_have_the_documented_signatures(captured: CapturedPipeline) -> None:
    specs = {name: (c.inputs, c.outputs) for name, c in captured.components.items()}
    assert specs == {
        "text_encoder": (
            (TensorSpec("input_ids", (1, 77), "int32"),),
            (TensorSpec("last_hidden_state", (1, 77, 32), "float32"),),
        ),
        "unet": (
            (
                TensorSpec("sample", (2, 4, 8, 8), "float32"),
                TensorSpec("timestep", (1,), "float32"),
                TensorSpec("encoder_hidden_states", (2, 77, 32), "float32"),
            ),
            (TensorSpec("noise_pred", (2, 4, 8, 8), "float32"),),
        ),
        "vae_decode": (
            (TensorSpec("latents", (1, 4, 8, 8), "float32"),),
            (TensorSpec("image", (1, 3, 64, 64), "float32"),),
        ),
        "vae_decode_tile": (
            (TensorSpec("latents", (1, 4, 4, 4), "float32"),),
            (TensorSpec("image", (1, 3, 32, 32), "float32"),),
        ),
        "vae_encode": (
            (
                TensorSpec("image", (1, 3, 64, 64), "float32"),
                TensorSpec("noise", (1, 4, 8, 8), "float32"),
            ),
            (TensorSpec("latents", (1, 4, 8, 8), "float32"),),
        ),
        "vae_encode_tile": (
            (
                TensorSpec("image", (1, 3, 32, 32), "float32"),
                TensorSpec("noise", (1, 4, 4, 4), "float32"),
            ),
            (TensorSpec("latents", (1, 4, 4, 4), "float32"),),
        ),
    }
    assert {name: c.name for name, c in captured.components.items()} == {
        name: name for name in specs
    }


def test_the_text_encoder_graph_matches_clip(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    ids = _ids(pipe, "an oil painting of a castle at night")
    with torch.no_grad():
        expected = pipe.text_encoder(ids).last_hidden_state
    got = _run(captured, "text_encoder", ids.to(torch.int32))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_unet_graph_matches_the_unet_at_an_integer_timestep(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    sample, _, hidden = _inputs(pipe)["unet"]
    with torch.no_grad():
        expected = pipe.unet(sample, torch.tensor(981), hidden).sample
    got = _run(captured, "unet", sample, torch.tensor([981.0]), hidden)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_vae_graph_decodes_scaled_latents(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    (latents,) = _inputs(pipe)["vae_decode"]
    with torch.no_grad():
        expected = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    got = _run(captured, "vae_decode", latents)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_tile_graph_is_the_vae_graph_on_a_crop(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    """``vae_decode_tile`` decodes a tile's latents exactly as diffusers decodes them."""
    (latents,) = _inputs(pipe)["vae_decode"]
    crop = latents[:, :, 2:6, 3:7].contiguous()
    with torch.no_grad():
        expected = pipe.vae.decode(crop / pipe.vae.config.scaling_factor).sample
    assert torch.allclose(_run(captured, "vae_decode_tile", crop), expected, atol=1e-5)


def test_the_encode_tile_graph_is_the_encoder_on_a_crop(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    """``vae_encode_tile`` encodes a tile's image as diffusers' encoder does:
    ``mean + std * noise``, scaled."""
    g = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, 32, 32, generator=g) * 2 - 1
    noise = torch.randn(1, 4, 4, 4, generator=g)
    with torch.no_grad():
        dist = pipe.vae.encode(image).latent_dist
        expected = (dist.mean + dist.std * noise) * pipe.vae.config.scaling_factor
    got = _run(captured, "vae_encode_tile", image, noise)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("latent", "tile"),
    [
        ((1, 4, 8, 8), (1, 4, 4, 4)),
        ((1, 4, 64, 64), (1, 4, 32, 32)),
        ((1, 4, 128, 96), (1, 4, VAE_TILE_MAX, VAE_TILE_MAX)),
        ((1, 4, 40, 5), (1, 4, 20, 2)),
        ((1, 4, 3, 64), None),
    ],
)
def test_the_tile_is_half_the_latents_at_most_vae_tile_max(
    latent: tuple[int, ...], tile: tuple[int, ...] | None
) -> None:
    assert vae_tile_shape(latent) == tile


def test_no_graph_holds_int64_or_bool_tensors(captured: CapturedPipeline) -> None:
    for component in captured.components.values():
        program = component.program
        values = [n.meta.get("val") for n in program.graph.nodes]
        dtypes = {v.dtype for v in values if isinstance(v, torch.Tensor)}
        dtypes |= {t.dtype for t in (*program.state_dict.values(), *program.constants.values())}
        assert dtypes <= {torch.float32, torch.int32}, component.name


def test_the_metadata_describes_the_pipeline(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline, preset_dir: Path
) -> None:
    meta = captured.metadata
    assert (meta.kind, meta.source, meta.height, meta.width) == ("sd15", str(preset_dir), 64, 64)
    assert meta.latent_shape == (1, 4, 8, 8)
    assert meta.vae_scaling_factor == pipe.vae.config.scaling_factor == 0.18215
    assert (meta.vae_scale_factor, meta.text_hidden_size) == (8, 32)
    assert meta.components == {n: c.spec for n, c in captured.components.items()}


def test_the_metadata_carries_the_scheduler_config(captured: CapturedPipeline) -> None:
    scheduler = captured.metadata.scheduler
    assert scheduler.class_name == "PNDMScheduler"
    assert scheduler.config["beta_schedule"] == "scaled_linear"
    assert scheduler.config["steps_offset"] == 1
    assert not any(key.startswith("_") for key in scheduler.config)


def test_the_metadata_carries_the_tokenizer(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline
) -> None:
    info = captured.metadata.tokenizer
    tok = pipe.tokenizer
    assert (info.model_max_length, info.bos_token_id, info.eos_token_id, info.pad_token_id) == (
        77,
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    assert json.loads(info.tokenizer_json)["model"]["type"] == "BPE"


def test_the_metadata_round_trips_through_json(captured: CapturedPipeline) -> None:
    data = json.loads(json.dumps(captured.metadata.to_dict()))
    assert PipelineMetadata.from_dict(data) == captured.metadata


def test_another_size_gives_other_static_shapes(pipe: StableDiffusionPipeline) -> None:
    small = capture_sd15(pipe, height=32, width=48)
    assert (small.metadata.height, small.metadata.width) == (32, 48)
    assert small.metadata.latent_shape == (1, 4, 4, 6)
    assert small.components["vae_decode"].outputs[0].shape == (1, 3, 32, 48)


@pytest.mark.parametrize(("height", "width"), [(40, 64), (64, 0), (-16, 64)])
def test_sizes_the_unet_cannot_take_are_refused(
    pipe: StableDiffusionPipeline, height: int, width: int
) -> None:
    with pytest.raises(
        CaptureError, match=r"use a positive multiple of 16 \(16, 32, \.\.\.; native"
    ):
        capture_sd15(pipe, height=height, width=width)


def test_a_tokenizer_longer_than_the_text_encoder_is_refused(preset_dir: Path) -> None:
    pipe = load_sd15(preset_dir)
    pipe.tokenizer.model_max_length = 100
    with pytest.raises(CaptureError, match="pads to 100 tokens but the text encoder has only 77"):
        capture_sd15(pipe)


def test_a_saved_capture_loads_back_and_computes_the_same(
    pipe: StableDiffusionPipeline, captured: CapturedPipeline, tmp_path: Path
) -> None:
    loaded = load_capture(save_capture(captured, tmp_path / "capture"))
    assert loaded.metadata == captured.metadata
    for name, args in _inputs(pipe).items():
        assert torch.equal(_run(loaded, name, *args), _run(captured, name, *args)), name


def test_a_saved_capture_has_the_documented_files(
    captured: CapturedPipeline, tmp_path: Path
) -> None:
    out = save_capture(captured, tmp_path / "capture")
    assert sorted(p.name for p in out.iterdir()) == [
        "metadata.json",
        "text_encoder.pt2",
        "tokenizer.json",
        "unet.pt2",
        "vae_decode.pt2",
        "vae_decode_tile.pt2",
        "vae_encode.pt2",
        "vae_encode_tile.pt2",
    ]
    assert (out / "tokenizer.json").read_text() == captured.metadata.tokenizer.tokenizer_json
    assert "tokenizer_json" not in (out / "metadata.json").read_text()


def test_loading_a_directory_without_metadata_says_so(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"has no metadata\.json"):
        load_capture(tmp_path)


def test_loading_another_format_says_to_capture_again(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps({"format": "wsd-capture/0"}))
    with pytest.raises(CaptureError, match="this wsd-capture reads 'wsd-capture/1'"):
        load_capture(tmp_path)


def test_loading_broken_metadata_says_so(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text("{")
    with pytest.raises(CaptureError, match=r"metadata\.json is not valid JSON"):
        load_capture(tmp_path)


def test_loading_an_incomplete_capture_names_the_missing_file(
    captured: CapturedPipeline, tmp_path: Path
) -> None:
    out = save_capture(captured, tmp_path / "capture")
    (out / "unet.pt2").unlink()
    with pytest.raises(CaptureError, match=r"lacks unet\.pt2: the capture is incomplete"):
        load_capture(out)


def test_a_unet_that_takes_other_than_the_vae_latents_is_refused(preset_dir: Path) -> None:
    pipe = load_sd15(preset_dir)
    pipe.unet.register_to_config(in_channels=5)
    message = (
        r"the UNet takes 5 channels but the VAE makes 4: only text-to-image UNets \(4 channels\) "
        r"and inpainting UNets \(9: latents, mask, masked image\) are supported"
    )
    with pytest.raises(CaptureError, match=message):
        capture_sd15(pipe)


def test_a_scheduler_config_that_is_not_json_is_refused(preset_dir: Path) -> None:
    pipe = load_sd15(preset_dir)
    pipe.scheduler.register_to_config(trained_betas=torch.linspace(0.1, 0.2, 1000))
    with pytest.raises(CaptureError, match="the scheduler config is not plain JSON"):
        capture_sd15(pipe)


# ---------------------------------------------------------------- SDXL


def test_sdxl_capture_describes_its_conditioning(tmp_path: Path) -> None:
    pipe = load_sdxl(write_preset("tiny-sdxl", tmp_path / "xl"))
    captured = capture_sdxl(pipe)
    meta = captured.metadata
    assert meta.kind == "sdxl" and (meta.height, meta.width) == (64, 64)
    assert list(captured.components) == [
        "text_encoder",
        "text_encoder_2",
        "unet",
        "vae_decode",
        "vae_decode_tile",
        "vae_encode",
        "vae_encode_tile",
    ]
    assert meta.text_hidden_size == 96
    assert meta.tokenizer_2 is not None and meta.tokenizer_2.pad_token_id == 0
    assert meta.conditioning is not None
    assert meta.conditioning.pooled_token == "argmax"
    assert meta.conditioning.force_zeros_for_empty_prompt
    unet = captured.components["unet"].spec
    assert [(t.name, t.shape) for t in unet.inputs[3:]] == [
        ("text_embeds", (2, 64)),
        ("time_ids", (2, 6)),
    ]
    again = load_capture(save_capture(captured, tmp_path / "capture"))
    assert again.metadata == meta
    assert (tmp_path / "capture" / "tokenizer_2.json").is_file()


def test_an_fp16_safe_vae_is_taken_from_its_config(tmp_path: Path) -> None:
    model = write_preset("tiny-sdxl", tmp_path / "xl")
    vae = load_sdxl(model).vae
    vae.register_to_config(force_upcast=False)
    vae.save_pretrained(tmp_path / "vae-fp16-fix")
    captured = capture_sdxl(load_sdxl(model, vae=tmp_path / "vae-fp16-fix"))
    assert captured.metadata.conditioning is not None
    assert captured.metadata.conditioning.vae_force_upcast is False


def test_an_sdxl_pipeline_whose_configs_disagree_is_refused(tmp_path: Path) -> None:
    pipe = load_sdxl(write_preset("tiny-sdxl", tmp_path / "xl"))
    pipe.unet.register_to_config(cross_attention_dim=128)
    with pytest.raises(CaptureError, match="cross_attention_dim is 128 but the two text encoders"):
        capture_sdxl(pipe)


@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [((8, 8), (4, 4), (1, 1)), ((64, 40), (32, 20), (8, 5)), ((9, 9), (8, 8), (2, 2))],
)
def test_tiles_of_a_local_decoder_blend_into_its_whole_image(
    size: tuple[int, int], tile: tuple[int, int], overlap: tuple[int, int]
) -> None:
    """Where every tile decodes its pixels as the whole image does (nearest
    upsampling), the blend is that image: the weights sum to one everywhere."""
    from wsd_capture.tiles import decode_in_tiles, tile_starts

    latents = np.random.default_rng(0).standard_normal((1, 4, *size)).astype(np.float32)

    def upsample(z: torch.Tensor) -> torch.Tensor:
        return z[:, :3].repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)

    got = decode_in_tiles(upsample, latents, tile, overlap, 8)
    assert np.allclose(got, upsample(torch.from_numpy(latents)).double().numpy(), atol=1e-6)
    for axis in (0, 1):
        starts = tile_starts(size[axis], tile[axis], overlap[axis])
        assert starts[0] == 0 and starts[-1] == size[axis] - tile[axis]
        assert all(b - a <= tile[axis] - overlap[axis] for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [((8, 8), (4, 4), (1, 1)), ((16, 12), (6, 5), (2, 1))]
)
def test_tiles_of_a_local_encoder_blend_to_the_whole_encoding(
    size: tuple[int, int], tile: tuple[int, int], overlap: tuple[int, int]
) -> None:
    """Where every tile encodes its latent pixels as the whole image does (mean
    pooling, plus the noise), the blend is that encoding; the weights sum to one."""
    from wsd_capture.tiles import encode_in_tiles

    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (1, 3, size[0] * 8, size[1] * 8))
    noise = rng.standard_normal((1, 3, *size))

    def pool(pixels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(pixels, 8) + 0.1 * z

    got = encode_in_tiles(pool, image, noise, tile, overlap, 8)
    expected = pool(torch.from_numpy(image), torch.from_numpy(noise)).numpy()
    assert np.allclose(got, expected, atol=1e-9)
    with pytest.raises(ValueError, match="does not encode to latents"):
        encode_in_tiles(pool, image[:, :, 8:], noise, tile, overlap, 8)
