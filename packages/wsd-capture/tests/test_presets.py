"""tiny-sd15: SD 1.5's architecture, small, deterministic, and a meaningful test model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    PNDMScheduler,
    SchedulerMixin,
    StableDiffusionPipeline,
)

from wsd_capture import PRESETS, CaptureError, write_preset

STEPS = 6
CAT = "a photo of a cat"
CASTLE = "an oil painting of a castle at night"
LIGHTHOUSE = "a watercolor painting of a lighthouse at dawn"


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _image(pipe: StableDiffusionPipeline, prompt: str, seed: int) -> np.ndarray:
    out = pipe(
        prompt,
        num_inference_steps=STEPS,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return np.asarray((out.images[0] * 255).round().astype(np.uint8))


def _latents(
    pipe: StableDiffusionPipeline, scheduler: type[SchedulerMixin], negative: str | None, seed: int
) -> torch.Tensor:
    config = pipe.scheduler.config
    pipe.scheduler = scheduler.from_config(config)
    try:
        out = pipe(
            LIGHTHOUSE,
            negative_prompt=negative,
            num_inference_steps=8,
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(seed),
            output_type="latent",
        )
    finally:
        pipe.scheduler = PNDMScheduler.from_config(config)
    return out.images


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255**2 / mse))


@pytest.fixture(scope="module")
def cat_image(pipe: StableDiffusionPipeline) -> np.ndarray:
    return _image(pipe, CAT, seed=0)


def test_presets_lists_tiny_sd15() -> None:
    assert "tiny-sd15" in PRESETS


def test_the_preset_is_the_same_bytes_on_every_write(preset_dir: Path, tmp_path: Path) -> None:
    again = write_preset("tiny-sd15", tmp_path / "again")
    assert _digest(again) == _digest(preset_dir)
    assert {"unet/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.json"} <= set(
        _digest(again)
    )


def test_an_unknown_preset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="unknown preset 'tiny-sd99': choose one of tiny-sd15"):
        write_preset("tiny-sd99", tmp_path / "x")


def test_a_non_empty_directory_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(CaptureError, match="already exists and is not empty"):
        write_preset("tiny-sd15", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_an_empty_directory_is_filled(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert (write_preset("tiny-sd15", out) / "model_index.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_the_text_encoder_matches_the_tokenizer(pipe: StableDiffusionPipeline) -> None:
    config, tok = pipe.text_encoder.config, pipe.tokenizer
    assert config.vocab_size == len(tok)
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
    )
    assert config.max_position_embeddings == tok.model_max_length == 77


def test_the_architecture_is_sd15_shrunk(pipe: StableDiffusionPipeline) -> None:
    unet, vae = pipe.unet.config, pipe.vae.config
    assert list(unet.down_block_types) == ["CrossAttnDownBlock2D", "DownBlock2D"]
    assert list(unet.up_block_types) == ["UpBlock2D", "CrossAttnUpBlock2D"]
    assert unet.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert 2 ** (len(vae.block_out_channels) - 1) == 8
    assert (unet.sample_size, unet.in_channels, vae.latent_channels) == (8, 4, 4)
    assert pipe.safety_checker is None and pipe.feature_extractor is None


def test_the_scheduler_is_sd15s_pndm(pipe: StableDiffusionPipeline) -> None:
    assert type(pipe.scheduler).__name__ == "PNDMScheduler"
    assert {k: pipe.scheduler.config[k] for k in ("beta_schedule", "beta_start", "beta_end")} == {
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "beta_end": 0.012,
    }
    assert pipe.scheduler.config.skip_prk_steps and not pipe.scheduler.config.set_alpha_to_one
    assert pipe.scheduler.config.steps_offset == 1
    assert pipe.scheduler.config.prediction_type == "epsilon"


def test_the_unet_is_a_plausible_denoiser_that_follows_prompt_and_timestep(
    pipe: StableDiffusionPipeline,
) -> None:
    """Unit-scale noise, mostly the noisy sample itself, plus a part (the
    residual) that the prompt (through cross-attention) and timestep change."""
    sample = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cat, castle = (pipe.encode_prompt(p, "cpu", 1, False)[0] for p in (CAT, CASTLE))
    with torch.no_grad():
        pred = pipe.unet(sample, 500, cat).sample
        by_prompt = pipe.unet(sample, 500, castle).sample - pred
        by_timestep = pipe.unet(sample, 300, cat).sample - pred
    residual = pred - sample
    assert 0.5 < pred.std() < 2.0
    assert torch.corrcoef(torch.stack([pred.flatten(), sample.flatten()]))[0, 1] > 0.9
    assert 0.1 * pred.std() < residual.std() < 0.5 * pred.std()
    assert by_prompt.std() > 0.25 * residual.std()
    assert by_timestep.std() > 0.1 * residual.std()


@pytest.mark.parametrize("scheduler", [PNDMScheduler, DPMSolverMultistepScheduler])
@pytest.mark.parametrize("negative", ["blurry, dark", None])
def test_generation_keeps_sd15s_latent_scale(
    pipe: StableDiffusionPipeline, scheduler: type[SchedulerMixin], negative: str | None
) -> None:
    """8 guided steps end at latents of about SD 1.5's scale (std ~1, |x| < 8),
    not the 25-100 a plain random UNet reaches: on those, a compiled model's
    fp32 round-off alone exceeds the 1e-3 that the browser parity test allows."""
    for seed in (0, 7):
        latents = _latents(pipe, scheduler, negative, seed)
        assert latents.abs().max() < 8
        assert 0.5 < latents.std() < 2.5


def test_a_different_prompt_gives_a_different_image(
    pipe: StableDiffusionPipeline, cat_image: np.ndarray
) -> None:
    assert _psnr(cat_image, _image(pipe, CASTLE, seed=0)) < 25


def test_a_different_seed_gives_a_different_image(
    pipe: StableDiffusionPipeline, cat_image: np.ndarray
) -> None:
    assert _psnr(cat_image, _image(pipe, CAT, seed=1)) < 25


def test_the_image_has_structure_and_is_not_saturated(cat_image: np.ndarray) -> None:
    assert cat_image.shape == (64, 64, 3)
    assert np.mean((cat_image == 0) | (cat_image == 255)) < 0.05
    assert cat_image.std() > 20
    assert cat_image.max() - cat_image.min() > 200


def test_the_v_prediction_variant_has_the_same_weights_and_sd21s_scheduler(
    preset_dir: Path, tmp_path: Path
) -> None:
    variant = write_preset("tiny-sd15-v", tmp_path / "v")
    pipe = StableDiffusionPipeline.from_pretrained(variant)
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    same = {
        k: v for k, v in _digest(variant).items() if not k.startswith(("scheduler", "model_index"))
    }
    assert same == {k: v for k, v in _digest(preset_dir).items() if k in same}
    assert len(same) > 5
