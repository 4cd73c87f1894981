"""Shared by the image-editing tests (image to image, inpainting): the start
picture, masks, diffusers' editing pipelines as references, and the page's
pipelines run in Node through Dawn (render.mjs), one loaded model per call."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wsd_web.server import STATIC_DIR

RENDER = STATIC_DIR.parent / "node" / "render.mjs"
PROMPT, NEGATIVE, SEED, STEPS = "a red lighthouse", "fog", 5, 8

#: An 8-bit RGB image and the final latents.
Result = tuple[np.ndarray, np.ndarray]
#: diffusers' editing pipeline on a preset: (scheduler, pipeline arguments) -> result.
Reference = Callable[..., Result]


def start_image(size: int) -> np.ndarray:
    """A deterministic RGB picture: gradients, a disc and some seeded noise."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.08).astype(float)
    noise = np.random.default_rng(1).uniform(-0.1, 0.1, (size, size, 3))
    rgb = np.stack([x, y, disc], axis=-1) * 0.8 + 0.1 + noise
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def rgba_option(image: np.ndarray) -> dict[str, Any]:
    """An RGB (or grayscale) picture as render.mjs takes it: opaque RGBA, base64."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    h, w, _ = image.shape
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    return {"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": w, "height": h}


def diffusers_reference(
    preset: str, directory: Path, classes: dict[str, Any], task: str
) -> Reference:
    """diffusers' pipeline for ``task`` (``img2img``, ``inpaint``) on ``preset``."""
    import diffusers
    import torch

    from wsd_capture import PRESET_KINDS, write_preset

    model_dir = write_preset(preset, directory / preset)
    xl = PRESET_KINDS[preset] == "sdxl"
    names = {
        "img2img": ("StableDiffusionImg2ImgPipeline", "StableDiffusionXLImg2ImgPipeline"),
        "inpaint": ("StableDiffusionInpaintPipeline", "StableDiffusionXLInpaintPipeline"),
    }
    cls = getattr(diffusers, names[task][xl])
    kwargs = {"add_watermarker": False} if xl else {}
    pipe = cls.from_pretrained(model_dir, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    own = pipe.scheduler.config

    def run(scheduler: str, **extra: Any) -> Result:
        from PIL import Image

        class_name, overrides = classes[scheduler]
        pipe.scheduler = getattr(diffusers, class_name).from_config(own, **overrides)
        args = {
            "prompt": PROMPT,
            "negative_prompt": NEGATIVE,
            "num_inference_steps": STEPS,
            # The page's default; diffusers' SDXL pipelines default to 5.0.
            "guidance_scale": 7.5,
            **{k: Image.fromarray(v) if isinstance(v, np.ndarray) else v for k, v in extra.items()},
        }
        latents = pipe(
            **args, generator=torch.Generator().manual_seed(SEED), output_type="latent"
        ).images
        out = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="np")
        return (out.images[0] * 255).round().astype(np.uint8), latents.numpy()

    return run


def node_generate(
    build: Path, task: str, variations: list[dict[str, Any]], **pictures: np.ndarray
) -> list[Result]:
    """The page's ``task`` pipeline through render.mjs: one loaded model, one
    generation per variation (options laid over the common ones), with the
    ``pictures`` (``image``, ``mask``) given to every generation."""
    options: dict[str, Any] = {
        "task": task,
        **{name: rgba_option(p) for name, p in pictures.items()},
        "variations": variations,
        "prompt": PROMPT,
        "negativePrompt": NEGATIVE,
        "seed": SEED,
        "steps": STEPS,
        "returnLatents": True,
        "returnPixels": True,
    }
    result = subprocess.run(
        ["node", str(RENDER), str(build), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    runs = report["runs"]
    assert [r["variation"] for r in runs] == list(range(len(variations)))
    h, w = report["height"], report["width"]
    out = []
    for run in runs:
        pixels = np.frombuffer(base64.b64decode(run["rgba"]), np.uint8).reshape(h, w, 4)[..., :3]
        out.append((pixels, np.asarray(run["latents"], np.float32)))
    return out
