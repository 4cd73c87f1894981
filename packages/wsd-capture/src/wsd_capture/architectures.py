"""The full-size Stable Diffusion 1.5 and SDXL base architectures, with seeded random weights.

The published configs of runwayml/stable-diffusion-v1-5 and
stabilityai/stable-diffusion-xl-base-1.0 (their ``unet``, ``text_encoder``,
``text_encoder_2``, ``vae`` and ``scheduler`` configs on the Hugging Face hub)
are written here as literal dicts, so that the real models' sizes and shapes
can be built without downloading anything: for compile measurements
(``scripts/measure_compile.py``) and the PyTorch benchmark
(``python -m wsd_capture.bench``). The weights are random, so the images mean
nothing; the work and memory per generation are the real models'.

The tokenizer is the project's tiny CLIP BPE tokenizer
(:func:`~wsd_capture.build_tiny_clip_tokenizer`, about a thousand
tokens, so all its ids fall inside the real 49408-row embedding table); it
tokenizes to the same 77 positions as CLIP's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from .errors import CaptureError
from .kinds import KINDS
from .presets import SDXL_SCHEDULER_CONFIG
from .tokenizer import build_tiny_clip_tokenizer

#: The architectures this module builds: one per model kind.
ARCHITECTURES: tuple[str, ...] = tuple(KINDS)

# runwayml/stable-diffusion-v1-5, without the "_class_name"/"_diffusers_version"/
# "architectures" bookkeeping keys.
_SD15_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": [
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ],
}
#: CLIP's special token ids (BOS, EOS, padding), the same in both text towers. Keyword
#: arguments rather than dict keys: bandit (B105) takes a "*_token_id" key for a password.
_CLIP_TOKEN_IDS: dict[str, Any] = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1)
_SD15_TEXT_ENCODER: dict[str, Any] = {  # openai/clip-vit-large-patch14's text tower
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    **_CLIP_TOKEN_IDS,
    "projection_dim": 768,
    "vocab_size": 49408,
}
_SD15_VAE: dict[str, Any] = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,  # diffusers' default; SD 1.5's config predates the key
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
_SD15_SCHEDULER: dict[str, Any] = {  # PNDMScheduler
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

# stabilityai/stable-diffusion-xl-base-1.0 (text_encoder is SD 1.5's CLIP ViT-L,
# the scheduler is wsd_capture.presets.SDXL_SCHEDULER_CONFIG), without
# bookkeeping keys and without keys that equal the classes' defaults where
# diffusers ignores them.
_SDXL_UNET: dict[str, Any] = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "resnet_time_scale_shift": "default",
    "sample_size": 128,
    "time_embedding_type": "positional",
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
_SDXL_TEXT_ENCODER_2: dict[str, Any] = {  # OpenCLIP ViT-bigG/14's text tower
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    **_CLIP_TOKEN_IDS,
    "projection_dim": 1280,
    "vocab_size": 49408,
}
_SDXL_VAE: dict[str, Any] = {
    **_SD15_VAE,
    "force_upcast": True,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
}


def sd15_configs() -> dict[str, dict[str, Any]]:
    """SD 1.5's published configs by component folder: ``unet``, ``text_encoder``,
    ``vae``, ``scheduler`` (PNDM's). A fresh copy on every call."""
    return copy.deepcopy(
        {
            "unet": _SD15_UNET,
            "text_encoder": _SD15_TEXT_ENCODER,
            "vae": _SD15_VAE,
            "scheduler": _SD15_SCHEDULER,
        }
    )


def sdxl_configs() -> dict[str, dict[str, Any]]:
    """SDXL base's published configs by component folder: ``unet``, ``text_encoder``,
    ``text_encoder_2``, ``vae``, ``scheduler`` (Euler's). A fresh copy on every call."""
    return copy.deepcopy(
        {
            "unet": _SDXL_UNET,
            "text_encoder": _SD15_TEXT_ENCODER,
            "text_encoder_2": _SDXL_TEXT_ENCODER_2,
            "vae": _SDXL_VAE,
            "scheduler": dict(SDXL_SCHEDULER_CONFIG),
        }
    )


def build_random_pipeline(
    kind: str, seed: int
) -> StableDiffusionPipeline | StableDiffusionXLPipeline:
    """The published architecture of ``kind`` (``"sd15"``: SD 1.5's, ``"sdxl"``: SDXL
    base's) in memory: fp32 on the CPU, random weights from ``seed`` (the same
    weights for the same seed).

    The first text encoder's bos/eos/pad ids are the tiny tokenizer's (the real
    config's 0/2/1 are CLIP's legacy values), so that it agrees with the
    tokenizer it ships with; SDXL's second encoder keeps ``eos_token_id=2``, as
    in the real config: it pools at the largest id. SD 1.5 has no safety
    checker, SDXL no watermarker.
    """
    record = KINDS.get(kind)
    if record is None:
        raise CaptureError(
            f"unknown architecture {kind!r}: choose one of {', '.join(ARCHITECTURES)}"
        )
    architecture = record.architecture_record()
    configs = architecture.configs()
    tokenizer = build_tiny_clip_tokenizer()
    text_config = configs["text_encoder"]
    if len(tokenizer) > text_config["vocab_size"]:
        raise CaptureError(
            f"the tokenizer has {len(tokenizer)} tokens, more than the text encoder's "
            f"{text_config['vocab_size']}-row embedding table"
        )
    text_config.update(
        bos_token_id=int(tokenizer.bos_token_id),
        eos_token_id=int(tokenizer.eos_token_id),
        pad_token_id=int(tokenizer.pad_token_id),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return architecture.build(configs, tokenizer)


def _sd15_pipeline(
    configs: dict[str, dict[str, Any]], tokenizer: CLIPTokenizer
) -> StableDiffusionPipeline:
    """SD 1.5's components, built in this order from the current RNG state."""
    unet = UNet2DConditionModel(**configs["unet"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    vae = AutoencoderKL(**configs["vae"])
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        # from_config, as from_pretrained does: it ignores keys PNDM has no use for
        # (SD 1.5's file carries DDIM's clip_sample).
        scheduler=PNDMScheduler.from_config(configs["scheduler"]),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl_pipeline(
    configs: dict[str, dict[str, Any]], tokenizer: CLIPTokenizer
) -> StableDiffusionXLPipeline:
    """SDXL base's components, built in this order from the current RNG state."""
    tokenizer_2 = build_tiny_clip_tokenizer(pad_token="!")  # nosec B106 # a pad token
    unet = UNet2DConditionModel(**configs["unet"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**configs["text_encoder_2"]))
    vae = AutoencoderKL(**configs["vae"])
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(configs["scheduler"]),
        add_watermarker=False,
    )


@dataclass(frozen=True)
class Architecture:
    """A published architecture: its component configs, and its pipeline built from
    them and a tokenizer (from the current RNG state). Kinds name theirs in
    ``wsd_capture.KINDS``."""

    configs: Callable[[], dict[str, dict[str, Any]]]
    build: Callable[
        [dict[str, dict[str, Any]], CLIPTokenizer],
        StableDiffusionPipeline | StableDiffusionXLPipeline,
    ]


SD15_ARCHITECTURE = Architecture(sd15_configs, _sd15_pipeline)
SDXL_ARCHITECTURE = Architecture(sdxl_configs, _sdxl_pipeline)
