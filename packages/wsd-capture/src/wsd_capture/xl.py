"""Capture an SDXL pipeline's components with ``torch.export`` at fixed shapes.

The components and their tensors (float32 and int32 only, as WGSL needs):

- ``text_encoder`` (CLIP ViT-L class): ``input_ids`` int32 [1, L] ->
  ``hidden_states`` [1, L, D1], the states before its last layer
  (``hidden_states[-2]``, no final layer norm), as SDXL conditions on.
- ``text_encoder_2`` (OpenCLIP bigG class, with projection): ``input_ids``
  int32 [1, L] and ``pooled_mask`` float32 [1, L] (one-hot at the token it
  pools, which the page finds from the ids) -> ``hidden_states`` [1, L, D2]
  (again ``hidden_states[-2]``) and ``text_embeds`` [1, P]: the final-norm
  state at the pooled token through ``text_projection``. Selecting the token
  by a mask keeps the int64 argmax of transformers' CLIP out of the graph;
  multiplying by one and adding zeros is exact.
- ``unet``: ``sample`` [2, 4, h, w], ``timestep`` float32 [1],
  ``encoder_hidden_states`` [2, L, D1 + D2], ``text_embeds`` [2, P],
  ``time_ids`` [2, 6] -> ``noise_pred`` [2, 4, h, w].
- ``vae_decode``: as SD 1.5's, with SDXL's ``latents_mean``/``latents_std``
  when the VAE config has them; ``vae_decode_tile`` the same at the tile shape.

Concatenating the two encoders' states, the zeros of an absent negative
prompt and the ``time_ids`` are the page's (and the compiled glue's) job:
:class:`XLConditioning` records the rules.
"""

from __future__ import annotations

import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModelWithProjection

from .capture import (
    CFG_BATCH,
    CapturedComponent,
    CapturedPipeline,
    Geometry,
    TextEncoderGraph,
    _export,
    _scheduler_info,
    check_token_length,
    export_vae_graphs,
    image_geometry,
)
from .errors import CaptureError
from .loading import use_webgpu_attention
from .metadata import PipelineMetadata, XLConditioning
from .tokenizer import tokenizer_info

#: Length of SDXL's ``time_ids``: original (h, w), crop top-left (y, x), target (h, w).
TIME_IDS_DIM = 6


class PooledTextEncoderGraph(TextEncoderGraph):
    """SDXL's second text encoder: penultimate states and the projected pooled state."""

    def __init__(self, text_encoder: CLIPTextModelWithProjection, length: int) -> None:
        super().__init__(text_encoder.text_model, length)
        self.text_projection = text_encoder.text_projection

    def forward(  # type: ignore[override]
        self, input_ids: torch.Tensor, pooled_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        penultimate = self.run_layers(self.embed(input_ids), self.layers[:-1])
        last = self.layers[-1](penultimate, self.causal_mask)
        if self.final_layer_norm is None:
            raise RuntimeError("the pooled text encoder needs its final layer norm")
        final = self.final_layer_norm(last)
        pooled = (final * pooled_mask[:, :, None]).sum(dim=1)
        return penultimate, self.text_projection(pooled)


class XLUNetGraph(nn.Module):
    """One noise prediction for the guidance batch with SDXL's added conditioning."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        text_embeds: torch.Tensor,
        time_ids: torch.Tensor,
    ) -> torch.Tensor:
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        out: torch.Tensor = self.unet(
            sample, timestep, encoder_hidden_states, added_cond_kwargs=added
        ).sample
        return out


def _pooled_token(text_encoder_2: CLIPTextModelWithProjection) -> str:
    # transformers' CLIP pools at the largest id for (legacy) configs with
    # eos_token_id == 2, and at the first eos_token_id otherwise.
    return "argmax" if text_encoder_2.config.eos_token_id == 2 else "eos"


def _check_sdxl(pipe: StableDiffusionXLPipeline) -> tuple[int, int]:
    unet = pipe.unet
    if pipe.text_encoder is None or pipe.text_encoder_2 is None:
        raise CaptureError(
            "the pipeline lacks a text encoder: wsd captures SDXL base pipelines, "
            "which have text_encoder and text_encoder_2 (refiner-only pipelines are not supported)"
        )
    if unet.config.addition_embed_type != "text_time":
        raise CaptureError(
            f"the UNet's addition_embed_type is {unet.config.addition_embed_type!r}, not "
            "'text_time': this is not an SDXL UNet"
        )
    if unet.config.time_cond_proj_dim is not None:
        raise CaptureError(
            "the UNet has time_cond_proj_dim (a guidance-distilled LCM UNet): not supported yet"
        )
    pooled_dim = int(pipe.text_encoder_2.config.projection_dim)
    time_dim = int(unet.config.addition_time_embed_dim)
    expected = int(unet.add_embedding.linear_1.in_features)
    if pooled_dim + TIME_IDS_DIM * time_dim != expected:
        raise CaptureError(
            f"the UNet expects added embeddings of {expected} values but text_encoder_2 "
            f"projects to {pooled_dim} and {TIME_IDS_DIM} time ids embed to {time_dim} each: "
            "the pipeline's configs do not fit together"
        )
    hidden = int(pipe.text_encoder.config.hidden_size) + int(pipe.text_encoder_2.config.hidden_size)
    if hidden != int(unet.config.cross_attention_dim):
        raise CaptureError(
            f"the UNet's cross_attention_dim is {unet.config.cross_attention_dim} but the two "
            f"text encoders give {hidden} features: the pipeline's configs do not fit together"
        )
    return pooled_dim, hidden


def _export_graphs(
    pipe: StableDiffusionXLPipeline,
    geometry: Geometry,
    length: int,
    pooled_dim: int,
    hidden_size: int,
) -> tuple[CapturedComponent, ...]:
    """Export the four graphs (see the module docstring) at the capture's shapes."""
    ids = torch.zeros((1, length), dtype=torch.int32)
    mask = torch.zeros((1, length))
    mask[0, -1] = 1.0
    h, w = geometry.latent_shape[2:]
    exported = (
        _export(
            "text_encoder",
            TextEncoderGraph(pipe.text_encoder, length, penultimate=True),
            {"input_ids": ids},
            "hidden_states",
        ),
        _export(
            "text_encoder_2",
            PooledTextEncoderGraph(pipe.text_encoder_2, length),
            {"input_ids": ids, "pooled_mask": mask},
            ("hidden_states", "text_embeds"),
        ),
        _export(
            "unet",
            XLUNetGraph(pipe.unet),
            {
                "sample": torch.zeros(CFG_BATCH, geometry.unet_in_channels, h, w),
                "timestep": torch.tensor([999.0]),
                "encoder_hidden_states": torch.zeros(CFG_BATCH, length, hidden_size),
                "text_embeds": torch.zeros(CFG_BATCH, pooled_dim),
                "time_ids": torch.zeros(CFG_BATCH, TIME_IDS_DIM),
            },
            "noise_pred",
        ),
        *export_vae_graphs(pipe.vae, geometry.latent_shape, latent_stats=True),
    )
    return exported


def capture_sdxl(
    pipe: StableDiffusionXLPipeline,
    *,
    height: int | None = None,
    width: int | None = None,
) -> CapturedPipeline:
    """Export ``text_encoder``, ``text_encoder_2``, ``unet`` and ``vae_decode`` in fp32.

    ``height``/``width`` default to the model's native size (1024 x 1024 for
    SDXL base) and must be positive multiples of what the UNet supports, at
    most twice the native size. The
    pipeline's attention is switched to the WebGPU-safe implementations first
    (as :func:`load_sdxl` does).
    """
    pooled_dim, hidden_size = _check_sdxl(pipe)
    unet, vae = pipe.unet, pipe.vae
    geometry = image_geometry(unet, vae, height, width)
    length = check_token_length(pipe.tokenizer, pipe.text_encoder)
    length_2 = check_token_length(pipe.tokenizer_2, pipe.text_encoder_2.text_model)
    if length != length_2:
        raise CaptureError(
            f"the tokenizers pad to {length} and {length_2} tokens: SDXL needs the same length"
        )
    scheduler = _scheduler_info(pipe)
    use_webgpu_attention(pipe)

    exported = _export_graphs(pipe, geometry, length, pooled_dim, hidden_size)
    components = {c.name: c for c in exported}
    conditioning = XLConditioning(
        force_zeros_for_empty_prompt=bool(pipe.config.force_zeros_for_empty_prompt),
        pooled_token=_pooled_token(pipe.text_encoder_2),
        pooled_dim=pooled_dim,
        time_ids_dim=TIME_IDS_DIM,
        vae_force_upcast=bool(getattr(vae.config, "force_upcast", True)),
    )
    metadata = PipelineMetadata(
        kind="sdxl",
        source=str(pipe.name_or_path or ""),
        height=geometry.height,
        width=geometry.width,
        latent_shape=geometry.latent_shape,
        vae_scaling_factor=float(vae.config.scaling_factor),
        vae_scale_factor=geometry.vae_scale_factor,
        text_hidden_size=hidden_size,
        components={name: c.spec for name, c in components.items()},
        scheduler=scheduler,
        tokenizer=tokenizer_info(pipe.tokenizer),
        tokenizer_2=tokenizer_info(pipe.tokenizer_2),
        conditioning=conditioning,
    )
    return CapturedPipeline(components=components, metadata=metadata)
