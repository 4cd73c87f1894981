"""Built-in tiny random-weight pipelines for tests and the demo.

``tiny-sd15`` has Stable Diffusion 1.5's architecture (CLIP text encoder, a
UNet with cross-attention down/mid/up blocks, a factor-8 VAE, PNDM with SD
1.5's scheduler settings) shrunk so that a full compile and a browser run stay
cheap. Its seeded weights are transformed so that it is a meaningful test
model: the UNet behaves like a plausible denoiser (its noise prediction is
about the noisy sample itself plus a part that depends strongly on the prompt
and the timestep), so generation keeps Stable Diffusion's latent scale, two
prompts or two seeds give clearly different images, and the VAE decodes to a
structured image, so a broken UNet or prompt path changes the picture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from wsd_artifacts import atomic_directory, check_new_directory

from .errors import CaptureError
from .kinds import PRESET_KINDS
from .tokenizer import MODEL_MAX_LENGTH, build_tiny_clip_tokenizer

#: ``tiny-sd15``: SD 1.5's architecture and scheduler (PNDM, epsilon).
#: ``tiny-sd15-v``: the same weights, configured as a v-prediction model the
#: way SD 2.x is (DDIM, ``prediction_type="v_prediction"``).
#: ``tiny-sdxl``: SDXL's architecture (two text encoders, pooled and
#: micro-conditioning through ``addition_time_embed_dim``, transformer depth per
#: block, an SDXL VAE config with ``force_upcast``) and its Euler scheduler.
#: ``tiny-sd15-inpaint`` and ``tiny-sdxl-inpaint``: the same architectures with
#: an inpainting checkpoint's 9-channel UNet (latents, mask, masked image).
#: (Each kind's record in ``wsd_capture.KINDS`` lists its presets;
#: ``PRESET_KINDS`` maps each preset to its kind.)
PRESETS: tuple[str, ...] = tuple(PRESET_KINDS)

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

# Stable Diffusion 2.1's (v-prediction) scheduler settings.
SD21_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
}


def _text_config(
    vocab_size: int, bos: int, eos: int, pad: int, *, hidden: int = TEXT_HIDDEN_SIZE, **kw: object
) -> CLIPTextConfig:
    settings: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MODEL_MAX_LENGTH,
        "hidden_act": "quick_gelu",
        "projection_dim": hidden,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        **kw,
    }
    return CLIPTextConfig(**settings)


def _text_encoder(vocab_size: int, bos: int, eos: int, pad: int) -> CLIPTextModel:
    return CLIPTextModel(_text_config(vocab_size, bos, eos, pad))


def _unet(in_channels: int = 4) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
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
# Scale of the random (prompt- and timestep-dependent) part of the prediction,
# which is added to the identity path below: about a fifth of the prediction's
# scale on unit latents (std ~0.19, of which the prompt changes ~0.08).
# Guidance multiplies its prompt dependence by 7.5; at this scale 8 steps end
# at latents of std ~1-1.3 within about +-6 (SD 1.5's own are within about
# +-5) and two prompts still give very different images. Round-off in a
# compiled model (the difference of the guidance pair, amplified by PNDM's
# 4-step extrapolation) grows in proportion to it.
_CONV_OUT_SCALE = 0.5
# Amplitude of the latent on the identity path as it enters `conv_norm_out`
# (see `_add_identity_path`): small enough that its variance (~1e-8) is
# negligible next to the GroupNorm's eps (1e-5).
_IDENTITY_AMPLITUDE = 1e-4


@torch.no_grad()
def _make_meaningful(unet: UNet2DConditionModel) -> None:
    """Rescale the UNet so its prediction follows prompt and timestep, then add
    the identity path that makes it a plausible denoiser."""
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            module.to_k.weight.mul_(_CROSS_ATTENTION_KEY_SCALE)
            module.to_v.weight.mul_(_CROSS_ATTENTION_VALUE_SCALE)
            module.to_out[0].weight.mul_(_CROSS_ATTENTION_OUT_SCALE)
        elif name.endswith("time_emb_proj"):
            module.weight.mul_(_TIME_EMBEDDING_SCALE)
    unet.conv_out.weight.mul_(_CONV_OUT_SCALE)
    unet.conv_out.bias.mul_(_CONV_OUT_SCALE)
    _add_identity_path(unet)


@torch.no_grad()
def _add_identity_path(unet: UNet2DConditionModel) -> None:
    """Make the prediction ``eps(x) = x / sqrt(1 + mean(x_c**2) / 1000) + r``:
    about the noisy sample ``x`` itself plus the random part ``r``.

    A random UNet's prediction is uncorrelated with its input, so the
    scheduler's ``x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)`` is about
    ``eps`` times ``sqrt((1 - a_t) / a_t)`` (up to ~15) at high ``t``, and 8
    steps with guidance end at latents of 25-100, where fp32 round-off alone
    reaches 1e-3. A denoiser whose ``eps`` is mostly ``x_t`` predicts a small
    ``x0`` instead. The path reuses the architecture's skip connection from
    ``conv_in`` to the last up block and overwrites a few weights (``x_c`` is
    latent channel ``c`` of 4, ``a`` is `_IDENTITY_AMPLITUDE`):

    - ``conv_in`` copies the latent into its channels ``0..3`` (a centre tap
      of 1); they go down the UNet as well as through the skip connection to
      the last up block.
    - That block's last resnet maps them, in its ``conv_shortcut``, to the
      pairs ``(a x_c, -a x_c)`` in channels ``2c, 2c + 1``; its ``conv2`` and
      the following transformer's ``proj_out`` write nothing there, so the
      pairs reach ``conv_norm_out`` unchanged.
    - ``conv_norm_out`` has groups of 2 channels: a group ``(a x_c, -a x_c)``
      has mean exactly 0 (the latent's mean survives) and variance
      ``a**2 mean(x_c**2)``, tiny next to the norm's eps, so the norm is the
      fixed scale ``1 / sqrt(eps)`` (saturating gently for large latents:
      the ``mean(x_c**2) / 1000`` above), which its affine weight undoes.
    - ``silu(z) - silu(-z) == z`` exactly, so ``conv_out`` reading ``+1`` and
      ``-1`` from a pair's centre taps gets ``x_c`` back through the SiLU.
      Its other weights from those channels are zero.
    """
    # The latents are the first input channels (an inpainting UNet's mask and
    # masked-image channels follow them, and keep their random weights).
    c = unet.config.out_channels
    norm = unet.conv_norm_out
    if norm.num_channels != 2 * norm.num_groups:
        raise ValueError("the latent pass-through needs conv_norm_out groups of 2 channels")
    pairs = slice(0, 2 * c)
    last_up = unet.up_blocks[-1]
    resnet = last_up.resnets[-1]
    # up-block resnets read torch.cat([hidden_states, skip]): the skip from
    # conv_in comes after the hidden channels.
    skip_start = resnet.conv1.in_channels - unet.conv_in.out_channels

    unet.conv_in.weight[:c] = 0.0
    unet.conv_in.bias[:c] = 0.0
    writers = [resnet.conv_shortcut, resnet.conv2]
    if getattr(last_up, "attentions", None):
        writers.append(last_up.attentions[-1].proj_out)
    for conv in writers:
        conv.weight[pairs] = 0.0
        conv.bias[pairs] = 0.0
    norm.weight[pairs] = norm.eps**0.5 / _IDENTITY_AMPLITUDE
    norm.bias[pairs] = 0.0
    unet.conv_out.weight[:, pairs] = 0.0
    for i in range(c):
        unet.conv_in.weight[i, i, 1, 1] = 1.0
        resnet.conv_shortcut.weight[2 * i, skip_start + i] = _IDENTITY_AMPLITUDE
        resnet.conv_shortcut.weight[2 * i + 1, skip_start + i] = -_IDENTITY_AMPLITUDE
        unet.conv_out.weight[i, 2 * i, 1, 1] = 1.0
        unet.conv_out.weight[i, 2 * i + 1, 1, 1] = -1.0


def build_tiny_sd15(
    prediction_type: str = "epsilon", *, inpainting: bool = False
) -> StableDiffusionPipeline:
    """The ``tiny-sd15`` pipeline in memory: same weights on every call.

    ``prediction_type="v_prediction"`` gives ``tiny-sd15-v``: the same
    weights under SD 2.1's scheduler config. ``inpainting`` gives
    ``tiny-sd15-inpaint``: an inpainting checkpoint's 9-channel UNet (latents,
    mask, masked image's latents), other weights than tiny-sd15's.
    """
    if prediction_type == "epsilon":
        scheduler = PNDMScheduler(**SD15_SCHEDULER_CONFIG)
    elif prediction_type == "v_prediction":
        scheduler = DDIMScheduler(**SD21_SCHEDULER_CONFIG)
    else:
        raise CaptureError(
            f"unknown prediction type {prediction_type!r}: use epsilon or v_prediction"
        )
    tokenizer = build_tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        text_encoder = _text_encoder(
            len(tokenizer),
            int(tokenizer.bos_token_id),
            int(tokenizer.eos_token_id),
            int(tokenizer.pad_token_id),
        )
        unet = _unet(9 if inpainting else 4)
        vae = _vae()
    _make_meaningful(unet)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# SDXL base's scheduler settings (its scheduler_config.json).
SDXL_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

XL_TEXT_HIDDEN_SIZE_2 = 64
XL_TIME_EMBED_DIM = 8


def _xl_unet(in_channels: int = 4) -> UNet2DConditionModel:
    # SDXL's block layout (no attention at the highest resolution, deeper
    # transformers lower down, linear projections, text_time added embeddings),
    # with widths shrunk. `attention_head_dim` holds head counts, as in SDXL's config.
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        norm_num_groups=16,
        cross_attention_dim=TEXT_HIDDEN_SIZE + XL_TEXT_HIDDEN_SIZE_2,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=XL_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=XL_TEXT_HIDDEN_SIZE_2 + 6 * XL_TIME_EMBED_DIM,
    )


# The added (pooled text + time ids) embedding joins the timestep embedding;
# scaled up so that the pooled prompt and the micro-conditioning visibly matter.
_ADDED_EMBEDDING_SCALE = 4.0


def build_tiny_sdxl(*, inpainting: bool = False) -> StableDiffusionXLPipeline:
    """The ``tiny-sdxl`` pipeline in memory: same weights on every call.
    ``inpainting`` gives ``tiny-sdxl-inpaint``, with a 9-channel UNet.

    Two CLIP text encoders (hidden 32, and 64 with a projection, configured
    with ``eos_token_id=2`` as SDXL's OpenCLIP encoder is, so it pools at the
    largest id), two tokenizers (the second pads with ``"!"``), SDXL's UNet
    layout, an SDXL-style VAE (scaling 0.13025, ``force_upcast``) and SDXL's
    Euler scheduler config; ``force_zeros_for_empty_prompt`` as SDXL base.
    """
    tokenizer = build_tiny_clip_tokenizer()
    tokenizer_2 = build_tiny_clip_tokenizer(pad_token="!")  # nosec B106 # a pad token
    ids = (len(tokenizer), int(tokenizer.bos_token_id), int(tokenizer.eos_token_id))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED + 1)
        text_encoder = CLIPTextModel(_text_config(*ids, int(tokenizer.pad_token_id)))
        text_encoder_2 = CLIPTextModelWithProjection(
            _text_config(
                ids[0],
                ids[1],
                2,
                int(tokenizer_2.pad_token_id),
                hidden=XL_TEXT_HIDDEN_SIZE_2,
                hidden_act="gelu",
            )
        )
        unet = _xl_unet(9 if inpainting else 4)
        vae = _vae()
    vae.register_to_config(scaling_factor=0.13025, force_upcast=True)
    _make_meaningful(unet)
    with torch.no_grad():
        unet.add_embedding.linear_1.weight.mul_(_ADDED_EMBEDDING_SCALE)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def write_preset(name: str, out_dir: str | os.PathLike[str]) -> Path:
    """Write the built-in preset ``name`` as a diffusers directory at ``out_dir``.

    The pipeline is saved into a temporary directory next to ``out_dir`` and
    renamed on success, so ``out_dir`` never holds a half-written model.
    """
    _check_name(name)
    out = Path(out_dir)
    with atomic_directory(out, check=lambda o: check_new_directory(o, CaptureError)) as tmp:
        build_preset(name).save_pretrained(tmp, safe_serialization=True)
    return out


def build_preset(name: str) -> DiffusionPipeline:
    """The built-in preset ``name`` in memory (fp32, CPU), as :func:`write_preset` saves it."""
    _check_name(name)
    return _BUILDERS[name]()


def _check_name(name: str) -> None:
    if name not in PRESETS:
        raise CaptureError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")


#: Each preset's pipeline.
_BUILDERS: dict[str, Callable[[], DiffusionPipeline]] = {
    "tiny-sd15": build_tiny_sd15,
    "tiny-sd15-v": lambda: build_tiny_sd15("v_prediction"),
    "tiny-sdxl": build_tiny_sdxl,
    "tiny-sd15-inpaint": lambda: build_tiny_sd15(inpainting=True),
    "tiny-sdxl-inpaint": lambda: build_tiny_sdxl(inpainting=True),
}
