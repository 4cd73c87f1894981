"""The work of one generation, stage by stage, as diffusers does it: what the benchmark times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
PROMPT = "a photo of an astronaut riding a horse on the moon, highly detailed"
NEGATIVE_PROMPT = "blurry, low quality"
GUIDANCE_SCALE = 7.5
CFG_BATCH = 2


@dataclass(frozen=True)
class Conditioning:
    """The UNet's conditioning for the guidance batch (negative first): ``hidden``
    [2, L, D]; SDXL's ``added`` ``text_embeds`` [2, P] and ``time_ids`` [2, 6]."""

    hidden: torch.Tensor
    added: dict[str, torch.Tensor] | None


class Generation:
    """The work of one generation, stage by stage, for one pipeline on one device at one
    precision: the methods are what the benchmark times (call them under
    ``torch.inference_mode()``). ``generate()`` gives the image diffusers'
    pipeline gives for :data:`PROMPT`, :data:`NEGATIVE_PROMPT`, ``steps`` and
    ``seed``.

    Construction moves the pipeline's models to ``device`` in the precision's
    dtype (see :func:`place`), checks ``height``/``width`` (default: native;
    :class:`CaptureError` when the model cannot take them) and tokenizes both
    prompts.
    """

    def __init__(
        self,
        pipe: DiffusionPipeline,
        *,
        device: torch.device,
        precision: str,
        height: int | None = None,
        width: int | None = None,
        steps: int,
        seed: int,
    ) -> None:
        from ..capture import image_geometry

        geometry = image_geometry(pipe.unet, pipe.vae, height, width)
        self.pipe = pipe
        self.device = device
        self.dtype = PRECISIONS[precision]
        self.height, self.width = geometry.height, geometry.width
        self.latent_shape = geometry.latent_shape
        self.steps = steps
        self.seed = seed
        place(pipe, device, self.dtype)
        self.xl = getattr(pipe, "text_encoder_2", None) is not None
        tokenizers = [pipe.tokenizer, pipe.tokenizer_2] if self.xl else [pipe.tokenizer]
        # Per tokenizer: the negative prompt's ids, then the positive prompt's.
        self.ids = [
            [self._tokenize(t, NEGATIVE_PROMPT), self._tokenize(t, PROMPT)] for t in tokenizers
        ]
        # SDXL's micro-conditioning: original size, crop top-left, target size.
        time_ids = [self.height, self.width, 0, 0, self.height, self.width]
        self.time_ids = torch.tensor([time_ids] * CFG_BATCH, dtype=self.dtype, device=device)

    def _tokenize(self, tokenizer: Any, text: str) -> torch.Tensor:
        ids: torch.Tensor = tokenizer(
            text,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return ids.to(self.device)

    def encode(self) -> Conditioning:
        """Both prompts through the text encoder(s), as diffusers' ``encode_prompt``."""
        if not self.xl:
            hidden = [self.pipe.text_encoder(ids)[0] for ids in self.ids[0]]
            return Conditioning(torch.cat(hidden), None)
        halves, pooled = [], []
        for ids, ids_2 in zip(*self.ids, strict=True):
            first = self.pipe.text_encoder(ids, output_hidden_states=True)
            second = self.pipe.text_encoder_2(ids_2, output_hidden_states=True)
            halves.append(torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1))
            pooled.append(second[0])
        added = {"text_embeds": torch.cat(pooled), "time_ids": self.time_ids}
        return Conditioning(torch.cat(halves), added)

    def initial_latents(self) -> torch.Tensor:
        """Seeded Gaussian latents at the scheduler's initial scale (after ``set_timesteps``)."""
        generator = torch.Generator(self.device).manual_seed(self.seed)
        latents = torch.randn(
            self.latent_shape, generator=generator, device=self.device, dtype=self.dtype
        )
        scaled: torch.Tensor = latents * self.pipe.scheduler.init_noise_sigma
        return scaled

    def unet(self, sample: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """One UNet forward of the guidance batch ``sample`` [2, 4, h, w] at timestep ``t``."""
        out: torch.Tensor = self.pipe.unet(
            sample,
            t,
            encoder_hidden_states=cond.hidden,
            added_cond_kwargs=cond.added,
            return_dict=False,
        )[0]
        return out

    def guided_step(
        self, noise_pred: torch.Tensor, t: torch.Tensor, latents: torch.Tensor
    ) -> torch.Tensor:
        """Classifier-free guidance on the UNet's batch, then one scheduler step."""
        uncond, text = noise_pred.chunk(CFG_BATCH)
        guided = uncond + GUIDANCE_SCALE * (text - uncond)
        prev: torch.Tensor = self.pipe.scheduler.step(guided, t, latents, return_dict=False)[0]
        return prev

    def model_input(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet's guidance-batch input for ``latents`` at ``t``."""
        sample: torch.Tensor = self.pipe.scheduler.scale_model_input(
            torch.cat([latents] * CFG_BATCH), t
        )
        return sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``vae.decode(latents / scaling_factor)`` in the VAE's dtype: the image, about
        in [-1, 1]."""
        vae = self.pipe.vae
        scaled = latents.to(vae.dtype) / vae.config.scaling_factor
        image: torch.Tensor = vae.decode(scaled, return_dict=False)[0]
        return image

    def generate(self) -> torch.Tensor:
        """A whole generation: the image [1, 3, H, W] in [0, 1]."""
        scheduler = self.pipe.scheduler
        cond = self.encode()
        scheduler.set_timesteps(self.steps, device=self.device)
        latents = self.initial_latents()
        for t in scheduler.timesteps:
            noise_pred = self.unet(self.model_input(latents, t), t, cond)
            latents = self.guided_step(noise_pred, t, latents)
        return (self.decode(latents) / 2 + 0.5).clamp(0, 1)

    def run_to_middle(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the scheduler up for a generation and run it (with a fixed noise
        prediction) up to its middle step; that step's timestep and latents."""
        scheduler = self.pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        latents = self.initial_latents()
        noise_pred = torch.cat([latents] * CFG_BATCH)
        timesteps = scheduler.timesteps
        for t in timesteps[: len(timesteps) // 2]:
            self.model_input(latents, t)
            latents = self.guided_step(noise_pred, t, latents)
        t = timesteps[len(timesteps) // 2]
        self.model_input(latents, t)
        return t, latents


def place(pipe: DiffusionPipeline, device: torch.device, dtype: torch.dtype) -> None:
    """Move ``pipe``'s models to ``device`` in ``dtype`` (an SDXL VAE whose config says
    ``force_upcast`` in fp32 under fp16, as diffusers runs it), in eval mode, with
    diffusers' default SDPA attention everywhere (``AttnProcessor2_0``; ``sdpa``
    in the text encoders)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    xl = getattr(pipe, "text_encoder_2", None) is not None
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.set_attn_implementation("sdpa")
            encoder.to(device=device, dtype=dtype).eval()
    upcast = xl and dtype == torch.float16 and bool(getattr(pipe.vae.config, "force_upcast", True))
    for model, model_dtype in ((pipe.unet, dtype), (pipe.vae, torch.float32 if upcast else dtype)):
        model.set_attn_processor(AttnProcessor2_0())
        model.to(device=device, dtype=model_dtype).eval()
