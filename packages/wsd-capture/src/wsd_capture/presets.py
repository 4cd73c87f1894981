"""Built-in tiny random-weight pipelines for tests and the demo.

``tiny-sd15`` has Stable Diffusion 1.5's architecture (CLIP text encoder, a
UNet with cross-attention down/mid/up blocks, a factor-8 VAE, PNDM with SD
1.5's scheduler settings) shrunk so that a full compile and a browser run stay
cheap. Its seeded weights are rescaled so that it is a meaningful test model:
the UNet predicts noise of about unit scale that depends strongly on the
prompt, and the VAE decodes to a structured image, so a broken UNet or prompt
path changes the picture.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .atomic import atomic_directory
from .errors import CaptureError
from .tokenizer import MODEL_MAX_LENGTH, build_tiny_clip_tokenizer

PRESETS: tuple[str, ...] = ("tiny-sd15",)

_SEED = 0
TEXT_HIDDEN_SIZE = 32

# Stable Diffusion 1.5's scheduler settings (its scheduler_config.json).
SD15_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "prediction_type": "epsilon",
}


def _text_encoder(vocab_size: int, bos: int, eos: int, pad: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN_SIZE,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MODEL_MAX_LENGTH,
        hidden_act="quick_gelu",
        projection_dim=TEXT_HIDDEN_SIZE,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return CLIPTextModel(config)


def _unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN_SIZE,
    )


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    )


# Rescaling of the seeded UNet (see the module docstring). Without it the
# cross-attention is nearly uniform over the 77 tokens (mostly padding), so the
# prediction hardly depends on the prompt, and the timestep barely matters.
_CROSS_ATTENTION_KEY_SCALE = 4.0
_CROSS_ATTENTION_VALUE_SCALE = 3.0
_CROSS_ATTENTION_OUT_SCALE = 3.0
_TIME_EMBEDDING_SCALE = 8.0
_CONV_OUT_SCALE = 2.5


@torch.no_grad()
def _make_meaningful(unet: UNet2DConditionModel) -> None:
    """Rescale the UNet so its prediction has unit scale and follows prompt and timestep."""
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            module.to_k.weight.mul_(_CROSS_ATTENTION_KEY_SCALE)
            module.to_v.weight.mul_(_CROSS_ATTENTION_VALUE_SCALE)
            module.to_out[0].weight.mul_(_CROSS_ATTENTION_OUT_SCALE)
        elif name.endswith("time_emb_proj"):
            module.weight.mul_(_TIME_EMBEDDING_SCALE)
    unet.conv_out.weight.mul_(_CONV_OUT_SCALE)
    unet.conv_out.bias.mul_(_CONV_OUT_SCALE)


def build_tiny_sd15() -> StableDiffusionPipeline:
    """The ``tiny-sd15`` pipeline in memory: same weights on every call."""
    tokenizer = build_tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        text_encoder = _text_encoder(
            len(tokenizer),
            int(tokenizer.bos_token_id),
            int(tokenizer.eos_token_id),
            int(tokenizer.pad_token_id),
        )
        unet = _unet()
        vae = _vae()
    _make_meaningful(unet)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(**SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def write_preset(name: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write the built-in preset ``name`` as a diffusers directory at ``out_dir``.

    The pipeline is saved into a temporary directory next to ``out_dir`` and
    renamed on success, so ``out_dir`` never holds a half-written model.
    """
    if name not in PRESETS:
        raise CaptureError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        build_tiny_sd15().save_pretrained(tmp, safe_serialization=True)
    return out
