"""Load Stable Diffusion 1.5- and SDXL-class pipelines in fp32, ready to capture for WebGPU."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.models.attention_processor import AttnProcessor

from .errors import CaptureError

SD15_PIPELINE_CLASS = "StableDiffusionPipeline"
SD15_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
SDXL_PIPELINE_CLASS = "StableDiffusionXLPipeline"
SDXL_COMPONENTS = (*SD15_COMPONENTS, "text_encoder_2", "tokenizer_2")
_FAMILY = {SD15_PIPELINE_CLASS: "Stable Diffusion 1.5-class", SDXL_PIPELINE_CLASS: "SDXL"}
# What to run instead, by the pipeline class found.
_WRONG_KIND_HINT = {
    SD15_PIPELINE_CLASS: "use wsd-compile sd15 (compile_sd15) for SD 1.5-class pipelines",
    SDXL_PIPELINE_CLASS: "use wsd-compile sdxl (compile_sdxl) for SDXL pipelines",
}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def use_webgpu_attention(pipe: DiffusionPipeline) -> None:
    """Switch attention to implementations whose graphs WebGPU accepts (numerically the same).

    torch's ``scaled_dot_product_attention`` decomposes into a safe softmax that
    reduces ``-inf`` masks through int8/bool buffers, which WGSL rejects, so the
    UNet and VAE use diffusers' classic ``AttnProcessor`` and the CLIP text
    encoder uses eager attention.
    """
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    pipe.text_encoder.set_attn_implementation("eager")
    if getattr(pipe, "text_encoder_2", None) is not None:
        pipe.text_encoder_2.set_attn_implementation("eager")


def _check_directory(path: Path, expected: str, components: tuple[str, ...]) -> None:
    index_path = path / "model_index.json"
    if not index_path.is_file():
        raise CaptureError(
            f"{path} has no model_index.json: point to a diffusers pipeline directory "
            "(as written by save_pretrained or `wsd-capture preset`)"
        )
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as e:
        raise CaptureError(f"{index_path} is not valid JSON ({e}): re-save the pipeline") from e
    class_name = index.get("_class_name")
    if class_name != expected:
        hint = _WRONG_KIND_HINT.get(str(class_name), f"point to a {_FAMILY[expected]} pipeline")
        raise CaptureError(f"{path} holds a {class_name}, not a {expected}: {hint}")
    missing = [
        name
        for name in components
        if not isinstance(index.get(name), list)
        or None in index[name]
        or not (path / name).is_dir()
    ]
    if missing:
        raise CaptureError(
            f"{path} lacks the pipeline component(s) {', '.join(missing)}: "
            "re-save the full pipeline with save_pretrained"
        )


def _check_source(
    source: str | os.PathLike[str], expected: str, components: tuple[str, ...]
) -> None:
    path = Path(source)
    if path.is_dir():
        _check_directory(path, expected, components)
    elif path.exists():
        raise CaptureError(f"{path} is a file, not a diffusers pipeline directory")
    elif not _HUB_ID.match(str(source)):
        raise CaptureError(f"{path} does not exist: give a diffusers pipeline directory")


def _load_error(source: object, what: str, e: Exception) -> CaptureError:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return CaptureError(
        f"cannot load {source} as {what} ({first_line}): "
        "give a local diffusers directory, or a hub id when the hub is reachable"
    )


def load_sd15(source: str | os.PathLike[str]) -> StableDiffusionPipeline:
    """Load a Stable Diffusion 1.5-class pipeline in fp32 with WebGPU-safe attention.

    ``source`` is a local diffusers directory or, when the hub is reachable, a
    hub id such as ``owner/name``. The safety checker is not loaded.
    """
    _check_source(source, SD15_PIPELINE_CLASS, SD15_COMPONENTS)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(source),
            dtype=torch.float32,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError) as e:
        raise _load_error(source, "a Stable Diffusion pipeline", e) from e
    use_webgpu_attention(pipe)
    return pipe


def load_sdxl(
    source: str | os.PathLike[str], *, vae: str | os.PathLike[str] | None = None
) -> StableDiffusionXLPipeline:
    """Load an SDXL pipeline in fp32 with WebGPU-safe attention and no watermarker.

    ``source`` is a local diffusers directory or, when the hub is reachable, a
    hub id. ``vae`` replaces the pipeline's VAE with another ``AutoencoderKL``
    (a directory or hub id), e.g. an fp16-safe SDXL VAE: its config's
    ``force_upcast`` decides whether fp16 builds decode in fp32.
    """
    _check_source(source, SDXL_PIPELINE_CLASS, SDXL_COMPONENTS)
    extra: dict[str, object] = {}
    if vae is not None:
        vae_path = Path(vae)
        if not vae_path.is_dir() and not _HUB_ID.match(str(vae)):
            raise CaptureError(f"{vae_path} is not a directory: give a diffusers AutoencoderKL")
        try:
            extra["vae"] = AutoencoderKL.from_pretrained(str(vae), dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise _load_error(vae, "an AutoencoderKL (VAE)", e) from e
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(
            str(source), dtype=torch.float32, add_watermarker=False, **extra
        )
    except (OSError, ValueError) as e:
        raise _load_error(source, "an SDXL pipeline", e) from e
    use_webgpu_attention(pipe)
    return pipe
