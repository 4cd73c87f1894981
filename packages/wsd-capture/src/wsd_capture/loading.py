"""Load a Stable Diffusion 1.5-class pipeline in fp32, ready to capture for WebGPU."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor

from .errors import CaptureError

SD15_PIPELINE_CLASS = "StableDiffusionPipeline"
SD15_COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def use_webgpu_attention(pipe: StableDiffusionPipeline) -> None:
    """Switch attention to implementations whose graphs WebGPU accepts (numerically the same).

    torch's ``scaled_dot_product_attention`` decomposes into a safe softmax that
    reduces ``-inf`` masks through int8/bool buffers, which WGSL rejects, so the
    UNet and VAE use diffusers' classic ``AttnProcessor`` and the CLIP text
    encoder uses eager attention.
    """
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    pipe.text_encoder.set_attn_implementation("eager")


def _check_directory(path: Path) -> None:
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
    if class_name != SD15_PIPELINE_CLASS:
        raise CaptureError(
            f"{path} holds a {class_name}, not a {SD15_PIPELINE_CLASS}: "
            "point to a Stable Diffusion 1.5-class pipeline"
        )
    missing = [
        name
        for name in SD15_COMPONENTS
        if not isinstance(index.get(name), list)
        or None in index[name]
        or not (path / name).is_dir()
    ]
    if missing:
        raise CaptureError(
            f"{path} lacks the pipeline component(s) {', '.join(missing)}: "
            "re-save the full pipeline with save_pretrained"
        )


def load_sd15(source: str | os.PathLike[str]) -> StableDiffusionPipeline:
    """Load a Stable Diffusion 1.5-class pipeline in fp32 with WebGPU-safe attention.

    ``source`` is a local diffusers directory or, when the hub is reachable, a
    hub id such as ``owner/name``. The safety checker is not loaded.
    """
    path = Path(source)
    if path.is_dir():
        _check_directory(path)
    elif path.exists():
        raise CaptureError(f"{path} is a file, not a diffusers pipeline directory")
    elif not _HUB_ID.match(str(source)):
        raise CaptureError(f"{path} does not exist: give a diffusers pipeline directory")
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(source),
            dtype=torch.float32,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CaptureError(
            f"cannot load {source} as a Stable Diffusion pipeline ({first_line}): "
            "give a local diffusers directory, or a hub id when the hub is reachable"
        ) from e
    use_webgpu_attention(pipe)
    return pipe
