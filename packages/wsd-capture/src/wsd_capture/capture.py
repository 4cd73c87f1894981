"""Capture an SD 1.5 pipeline's components with ``torch.export`` at fixed shapes.

Each component is wrapped in a small module whose inputs and outputs are the
tensors the browser passes around, in dtypes WGSL has (float32, int32):

- ``text_encoder``: ``input_ids`` int32 [1, L] -> ``last_hidden_state`` [1, L, D]
- ``unet``: ``sample`` [2, 4, h, w] (the classifier-free guidance batch),
  ``timestep`` float32 [1], ``encoder_hidden_states`` [2, L, D] -> ``noise_pred``
- ``vae_decode``: ``latents`` [1, 4, h, w] -> ``image`` [1, 3, H, W] in about [-1, 1]
- ``vae_decode_tile``: the same decoder at the tile shape of :func:`vae_tile_shape`
  (the page decodes large images in overlapping tiles with it, to bound the
  decoder's activations); it shares ``vae_decode``'s weights.
- ``vae_encode``: ``image`` [1, 3, H, W] in [-1, 1] and ``noise`` [1, 4, h, w]
  -> ``latents`` [1, 4, h, w], a sample of the encoder's latent distribution
  scaled as the image-to-image pipelines scale it (the first step of
  image to image and inpainting).
- ``vae_encode_tile``: the same encoder at the image size of one decode tile
  (its ``noise`` and ``latents`` at :func:`vae_tile_shape`): the page encodes a
  large image in overlapping tiles with it and blends their latents, so the
  encoder's activations are those of one tile; it shares ``vae_encode``'s
  weights.

Guidance scale, step count, seed and scheduler stay outside the graphs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer

from .errors import CaptureError
from .loading import use_webgpu_attention
from .metadata import ComponentSpec, PipelineMetadata, SchedulerInfo, TensorSpec
from .tokenizer import tokenizer_info

CFG_BATCH = 2
# Additive causal-mask value: representable in fp16 and fp32, and exp() of it
# underflows to exactly 0, so masked scores vanish as with -inf, without -inf.
_MASKED = torch.finfo(torch.float16).min


class TextEncoderGraph(nn.Module):
    """CLIP text encoder to ``last_hidden_state`` from int32 token ids.

    Holds only the encoder's parts that this output uses: position ids are an
    int32 constant, the causal mask a float constant, and neither CLIP's int64
    position-id buffer nor its pooled output (an int64 argmax over the ids) is
    part of the graph, so it has no int64 or bool tensors.

    ``penultimate=True`` returns the hidden states before the last layer, without
    the final layer norm (``hidden_states[-2]``, what SDXL conditions on); the
    last layer and the norm are then left out of the graph.
    """

    def __init__(
        self, text_encoder: CLIPTextModel, length: int, *, penultimate: bool = False
    ) -> None:
        super().__init__()
        self.token_embedding = text_encoder.embeddings.token_embedding
        self.position_embedding = text_encoder.embeddings.position_embedding
        layers = text_encoder.encoder.layers
        self.layers = nn.ModuleList(layers[:-1] if penultimate else layers)
        self.final_layer_norm = None if penultimate else text_encoder.final_layer_norm
        self.register_buffer(
            "position_ids", torch.arange(length, dtype=torch.int32)[None], persistent=False
        )
        self.register_buffer(
            "causal_mask",
            torch.full((length, length), _MASKED, dtype=torch.float32).triu(1)[None, None],
            persistent=False,
        )

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden: torch.Tensor = self.token_embedding(input_ids) + self.position_embedding(
            self.position_ids
        )
        return hidden

    def run_layers(self, hidden: torch.Tensor, layers: Iterable[nn.Module]) -> torch.Tensor:
        for layer in layers:
            hidden = layer(hidden, self.causal_mask)
        return hidden

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.run_layers(self.embed(input_ids), self.layers)
        if self.final_layer_norm is None:
            return hidden
        out: torch.Tensor = self.final_layer_norm(hidden)
        return out


class UNetGraph(nn.Module):
    """One noise prediction for the guidance batch at a float32 timestep."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        out: torch.Tensor = self.unet(sample, timestep, encoder_hidden_states).sample
        return out


class VaeDecodeGraph(nn.Module):
    """Latents (as the scheduler produces them) to an image in about [-1, 1].

    Computes ``vae.decode(latents / vae.config.scaling_factor).sample`` with only
    the decoding half of the VAE, so the encoder's weights stay out of the graph.
    With ``latent_stats`` (what the SDXL pipeline does) a VAE whose config has
    ``latents_mean``/``latents_std`` decodes ``latents * std / scaling + mean``.
    """

    def __init__(self, vae: AutoencoderKL, *, latent_stats: bool = False) -> None:
        super().__init__()
        config = vae.config
        self.scaling_factor = float(config.scaling_factor)
        self.post_quant_conv = vae.post_quant_conv or nn.Identity()
        self.decoder = vae.decoder
        mean = getattr(config, "latents_mean", None) if latent_stats else None
        std = getattr(config, "latents_std", None) if latent_stats else None
        self.latent_stats = mean is not None and std is not None
        if self.latent_stats:
            view = (1, int(config.latent_channels), 1, 1)
            self.register_buffer("latents_mean", torch.tensor(mean).view(view), persistent=False)
            self.register_buffer("latents_std", torch.tensor(std).view(view), persistent=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        if self.latent_stats:
            std, mean = self.get_buffer("latents_std"), self.get_buffer("latents_mean")
            latents = latents * std / self.scaling_factor + mean
        else:
            latents = latents / self.scaling_factor
        out: torch.Tensor = self.decoder(self.post_quant_conv(latents))
        return out


class VaeEncodeGraph(nn.Module):
    """An image in [-1, 1] and standard normal noise to scaled latents.

    What diffusers' image-to-image pipelines do before adding noise:
    ``vae.encode(image).latent_dist.sample(generator)`` (``mean + std * noise``,
    the noise drawn from the pipeline's generator, so it is an input here)
    times ``scaling_factor``; with ``latent_stats`` (SDXL) and a VAE config
    that has ``latents_mean``/``latents_std``,
    ``(sample - mean) * scaling_factor / std``. Only the encoding half of the
    VAE is in the graph.
    """

    def __init__(self, vae: AutoencoderKL, *, latent_stats: bool = False) -> None:
        super().__init__()
        config = vae.config
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv or nn.Identity()
        view = (1, int(config.latent_channels), 1, 1)
        mean = getattr(config, "latents_mean", None) if latent_stats else None
        std = getattr(config, "latents_std", None) if latent_stats else None
        scaling = float(config.scaling_factor)
        # sample -> (sample - shift) * scale, per channel.
        shift = torch.zeros(view) if mean is None or std is None else torch.tensor(mean).view(view)
        scale = (
            torch.full(view, scaling)
            if mean is None or std is None
            else scaling / torch.tensor(std).view(view)
        )
        self.register_buffer("shift", shift, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, image: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        moments = self.quant_conv(self.encoder(image))
        mean, logvar = torch.chunk(moments, 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        sample = mean + std * noise
        out: torch.Tensor = (sample - self.get_buffer("shift")) * self.get_buffer("scale")
        return out


@dataclass(frozen=True)
class CapturedComponent:
    """One exported component and its signature."""

    spec: ComponentSpec
    program: torch.export.ExportedProgram

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.outputs


@dataclass(frozen=True)
class CapturedPipeline:
    """The exported components of a pipeline (by name) and its metadata."""

    components: dict[str, CapturedComponent]
    metadata: PipelineMetadata


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


#: The largest side of a VAE decode tile, in latent pixels (256 image pixels at
#: SD's factor 8): the decoder's activations at a 32 x 32 tile are 1/16 of a
#: 128 x 128 latent's (SDXL at 1024), and its largest fp32 tensor (256
#: channels at 256 x 256) is 64 MiB, within WebGPU's default binding limit.
VAE_TILE_MAX = 32


def vae_tile_shape(latent_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The latent shape ``vae_decode_tile`` decodes: half of each side of
    ``latent_shape``, at most ``VAE_TILE_MAX`` (32); ``None`` for latents under 4 x 4."""
    *lead, h, w = latent_shape
    if h < 4 or w < 4:
        return None
    return (*lead, min(h // 2, VAE_TILE_MAX), min(w // 2, VAE_TILE_MAX))


def export_vae_graphs(
    vae: AutoencoderKL, latent_shape: tuple[int, ...], *, latent_stats: bool = False
) -> tuple[CapturedComponent, ...]:
    """``vae_decode`` at ``latent_shape`` and, when it has one, ``vae_decode_tile``
    at :func:`vae_tile_shape`; then ``vae_encode`` for the image that
    ``latent_shape`` decodes to and, with the tile, ``vae_encode_tile`` for the
    image of one tile."""
    tile = vae_tile_shape(latent_shape)
    decoder = VaeDecodeGraph(vae, latent_stats=latent_stats)
    encoder = VaeEncodeGraph(vae, latent_stats=latent_stats)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    channels = int(vae.config.in_channels)

    def encode(name: str, shape: tuple[int, ...]) -> CapturedComponent:
        *_, h, w = shape
        image = torch.zeros(1, channels, h * factor, w * factor)
        return _export(name, encoder, {"image": image, "noise": torch.zeros(shape)}, "latents")

    decoders = tuple(
        _export(name, decoder, {"latents": torch.zeros(shape)}, "image")
        for name, shape in (("vae_decode", latent_shape), ("vae_decode_tile", tile))
        if shape is not None
    )
    encoders: tuple[CapturedComponent, ...] = (encode("vae_encode", latent_shape),)
    if tile is not None:
        encoders += (encode("vae_encode_tile", tile),)
    return (*decoders, *encoders)


def _export(
    name: str,
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    output_names: str | tuple[str, ...],
) -> CapturedComponent:
    names = (output_names,) if isinstance(output_names, str) else output_names
    with torch.no_grad():
        program = torch.export.export(module.eval(), tuple(inputs.values()))
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    results = [r.meta["val"] for r in output_node.args[0]]
    if len(results) != len(names):
        raise CaptureError(f"{name}: expected {len(names)} outputs, the graph has {len(results)}")
    spec = ComponentSpec(
        name=name,
        inputs=tuple(
            TensorSpec(n, tuple(t.shape), _dtype_name(t.dtype)) for n, t in inputs.items()
        ),
        outputs=tuple(
            TensorSpec(n, tuple(r.shape), _dtype_name(r.dtype))
            for n, r in zip(names, results, strict=True)
        ),
    )
    return CapturedComponent(spec=spec, program=program)


def _scheduler_info(pipe: DiffusionPipeline) -> SchedulerInfo:
    config = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    try:
        plain: dict[str, Any] = json.loads(json.dumps(config))
    except TypeError as e:
        raise CaptureError(f"the scheduler config is not plain JSON ({e})") from e
    return SchedulerInfo(class_name=type(pipe.scheduler).__name__, config=plain)


#: The largest height or width, as a multiple of the native size: beyond it the
#: attention and VAE activations outgrow what WebGPU devices can bind.
MAX_SIZE_FACTOR = 2


def _image_size(value: int | None, native: int, multiple: int, what: str) -> int:
    if value is None:
        return native
    largest = max(MAX_SIZE_FACTOR * native // multiple, 1) * multiple
    if value <= 0 or value % multiple or value > largest:
        raise CaptureError(
            f"{what} {value} is not supported: use a positive multiple of {multiple} "
            f"({multiple}, {2 * multiple}, ...; native is {native}) up to {largest}"
        )
    return value


@dataclass(frozen=True)
class Geometry:
    """Image and latent sizes of one capture."""

    height: int
    width: int
    vae_scale_factor: int
    latent_shape: tuple[int, int, int, int]
    #: The UNet's input channels: the latents' (text to image), or the latents',
    #: the mask's and the masked image's latents' (an inpainting checkpoint).
    unet_in_channels: int


def image_geometry(
    unet: UNet2DConditionModel, vae: AutoencoderKL, height: int | None, width: int | None
) -> Geometry:
    """Check ``height``/``width`` (default: native) against what the UNet supports.

    Each must be a positive multiple of the VAE's factor times the UNet's
    downsampling, at most :data:`MAX_SIZE_FACTOR` times the native size.
    """
    vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    multiple = vae_scale_factor * 2 ** (len(unet.config.down_block_types) - 1)
    native = int(unet.config.sample_size) * vae_scale_factor
    height = _image_size(height, native, multiple, "height")
    width = _image_size(width, native, multiple, "width")
    latent_channels = int(vae.config.latent_channels)
    in_channels = int(unet.config.in_channels)
    if in_channels not in (latent_channels, 2 * latent_channels + 1):
        raise CaptureError(
            f"the UNet takes {in_channels} channels but the VAE makes {latent_channels}: "
            f"only text-to-image UNets ({latent_channels} channels) and inpainting UNets "
            f"({2 * latent_channels + 1}: latents, mask, masked image) are supported"
        )
    latent_shape = (1, latent_channels, height // vae_scale_factor, width // vae_scale_factor)
    return Geometry(height, width, vae_scale_factor, latent_shape, in_channels)


def check_image_size(
    model_dir: str | os.PathLike[str],
    height: int | None,
    width: int | None,
    *,
    vae_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Check ``height``/``width`` as capturing does, from a local diffusers directory's
    ``unet/config.json`` and ``vae/config.json`` (or ``vae_dir``'s) alone: each a positive
    multiple of the VAE's factor times the UNet's downsampling, at most twice the native size.

    So a size the model cannot take fails before minutes of loading its weights.
    Does nothing when the configs cannot be read; loading then says why.
    """
    if height is None and width is None:
        return
    root = Path(model_dir)
    vae_config = (
        Path(vae_dir) / "config.json" if vae_dir is not None else root / "vae" / "config.json"
    )
    try:
        unet, vae = (
            SimpleNamespace(config=SimpleNamespace(**json.loads(p.read_text(encoding="utf-8"))))
            for p in (root / "unet" / "config.json", vae_config)
        )
        image_geometry(unet, vae, height, width)
    except (OSError, ValueError, TypeError, AttributeError):
        return


def check_token_length(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel) -> int:
    """The tokenizer's padded length, which the text encoder must have positions for."""
    length = int(tokenizer.model_max_length)
    max_positions = int(text_encoder.config.max_position_embeddings)
    if length > max_positions:
        raise CaptureError(
            f"the tokenizer pads to {length} tokens but the text encoder has only "
            f"{max_positions} positions: set tokenizer.model_max_length to {max_positions}"
        )
    return length


def capture_sd15(
    pipe: StableDiffusionPipeline,
    *,
    height: int | None = None,
    width: int | None = None,
) -> CapturedPipeline:
    """Export ``text_encoder``, ``unet`` and ``vae_decode`` in fp32 for one image size.

    ``height``/``width`` default to the model's native size and must be positive
    multiples of what the UNet supports, at most twice the native size. The
    pipeline's attention is switched to the WebGPU-safe implementations first
    (as :func:`load_sd15` does).
    """
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    geometry = image_geometry(unet, vae, height, width)
    height, width = geometry.height, geometry.width
    vae_scale_factor, latent_shape = geometry.vae_scale_factor, geometry.latent_shape
    h, w = latent_shape[2:]
    length = check_token_length(tokenizer, text_encoder)
    scheduler = _scheduler_info(pipe)
    use_webgpu_attention(pipe)

    hidden_size = int(text_encoder.config.hidden_size)
    exported = (
        _export(
            "text_encoder",
            TextEncoderGraph(text_encoder, length),
            {"input_ids": torch.full((1, length), int(tokenizer.pad_token_id), dtype=torch.int32)},
            "last_hidden_state",
        ),
        _export(
            "unet",
            UNetGraph(unet),
            {
                "sample": torch.zeros(CFG_BATCH, geometry.unet_in_channels, h, w),
                "timestep": torch.tensor([999.0]),
                "encoder_hidden_states": torch.zeros(CFG_BATCH, length, hidden_size),
            },
            "noise_pred",
        ),
        *export_vae_graphs(vae, latent_shape),
    )
    components = {c.name: c for c in exported}
    metadata = PipelineMetadata(
        kind="sd15",
        source=str(pipe.name_or_path or ""),
        height=height,
        width=width,
        latent_shape=latent_shape,
        vae_scaling_factor=float(vae.config.scaling_factor),
        vae_scale_factor=vae_scale_factor,
        text_hidden_size=hidden_size,
        components={name: c.spec for name, c in components.items()},
        scheduler=scheduler,
        tokenizer=tokenizer_info(tokenizer),
    )
    return CapturedPipeline(components=components, metadata=metadata)
