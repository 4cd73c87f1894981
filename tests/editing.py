"""Shared by the image-editing tests (image to image, inpainting): the start
picture, masks, diffusers' editing pipelines as references, the page's
pipelines run in Node through Dawn (render.mjs), one loaded model per call, and
driving the page (also for the LoRA tests)."""

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


def masks(size: int) -> dict[str, np.ndarray]:
    """Grayscale masks, white where the image is repainted: the right half, and a
    disc (gray at its rim: below half white is kept, as diffusers binarises)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    half = np.where(x >= 0.5, 255, 0).astype(np.uint8)
    d = np.sqrt((x - 0.4) ** 2 + (y - 0.5) ** 2)
    disc = np.clip((0.3 - d) / 0.05 * 255, 0, 255).round().astype(np.uint8)
    return {"half": half, "disc": disc}


#: Image to image: each preset's schedulers, and the strengths each runs at.
IMG2IMG_SCHEDULERS = {"tiny-sd15": ("euler", "dpmpp-2m"), "tiny-sdxl": ("euler", "ddim")}
STRENGTHS = (0.3, 0.8)
#: Inpainting: the presets with an ordinary UNet (4 channels) and with an
#: inpainting checkpoint's (9), their schedulers, and the masks each runs with.
INPAINT_SCHEDULERS = {
    "tiny-sd15": ("euler", "dpmpp-2m"),
    "tiny-sdxl": ("euler", "ddim"),
    "tiny-sd15-inpaint": ("euler", "dpmpp-2m"),
    "tiny-sdxl-inpaint": ("euler", "ddim"),
}

#: A generation of the editing tests: (task, scheduler, strength or mask name).
Key = tuple[str, str, str]


def editing_plan(preset: str) -> list[tuple[Key, dict[str, Any]]]:
    """Every editing generation the tests make with ``preset``, as render.mjs variations."""
    plan: list[tuple[Key, dict[str, Any]]] = []
    for scheduler in IMG2IMG_SCHEDULERS.get(preset, ()):
        for strength in STRENGTHS:
            variation = {"task": "image-to-image", "scheduler": scheduler, "strength": strength}
            plan.append((("image-to-image", scheduler, str(strength)), variation))
    for scheduler in INPAINT_SCHEDULERS.get(preset, ()):
        for name, mask in masks(64).items():
            variation = {"task": "inpainting", "scheduler": scheduler, "mask": rgba_option(mask)}
            plan.append((("inpainting", scheduler, name), variation))
    return plan


def build_fixture(preset: str) -> str:
    """The name of the session fixture of ``preset``'s cached build (tests/conftest.py)."""
    return f"tiny_{preset.removeprefix('tiny-').replace('-', '_')}_build"


def rgba_option(image: np.ndarray) -> dict[str, Any]:
    """An RGB (or grayscale) picture as render.mjs takes it: opaque RGBA, base64."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    h, w, _ = image.shape
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    return {"rgba": base64.b64encode(rgba.tobytes()).decode(), "width": w, "height": h}


#: A VAE tile plan: the tile and the overlap, in latent rows and columns.
TilePlan = tuple[tuple[int, int], tuple[int, int]]


def _encode_in_tiles(vae: Any, plan: TilePlan) -> Callable[[Any], Any]:
    """``vae.encode`` as the page encodes in tiles (``wsd_capture.tiles``): diffusers'
    encoder on each tile, each tile's sample drawn with the noise of its own latent
    pixels (one draw from the pipeline's generator, as the whole image's), blended."""
    from types import SimpleNamespace

    import torch
    from diffusers.utils.torch_utils import randn_tensor

    from wsd_capture.tiles import encode_in_tiles

    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    channels = int(vae.config.latent_channels)
    whole = vae.encode

    def tile_sample(pixels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        dist = whole(pixels).latent_dist
        sample: torch.Tensor = dist.mean + dist.std * noise
        return sample

    def encode(image: torch.Tensor) -> Any:
        def sample(generator: torch.Generator | None = None) -> torch.Tensor:
            h, w = image.shape[2] // factor, image.shape[3] // factor
            noise = randn_tensor((1, channels, h, w), generator=generator, dtype=image.dtype)
            pixels = image.detach().double().numpy()
            blended = encode_in_tiles(
                lambda p, z: tile_sample(p.to(image.dtype), z), pixels, noise.numpy(), *plan, factor
            )
            return torch.from_numpy(blended).to(image.dtype)

        return SimpleNamespace(latent_dist=SimpleNamespace(sample=sample))

    return encode


def diffusers_reference(
    preset: str,
    directory: Path,
    classes: dict[str, Any],
    task: str,
    vae_tiles: TilePlan | None = None,
) -> Reference:
    """diffusers' pipeline for ``task`` (``img2img``, ``inpaint``) on ``preset``; with
    ``vae_tiles``, its VAE encoding and decoding in those tiles as the page does."""
    import diffusers
    import torch

    from wsd_capture import PRESET_KINDS, write_preset
    from wsd_capture.tiles import decode_in_tiles, to_pixels

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
    vae = pipe.vae
    if vae_tiles is not None:
        assert getattr(vae.config, "latents_mean", None) is None
        vae.encode = _encode_in_tiles(vae, vae_tiles)

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
        if vae_tiles is not None:
            factor = 2 ** (len(vae.config.block_out_channels) - 1)
            scaling = float(vae.config.scaling_factor)
            decoded = decode_in_tiles(
                lambda z: vae.decode(z / scaling).sample, latents.numpy(), *vae_tiles, factor
            )
            return to_pixels(decoded), latents.numpy()
        out = pipe(**args, generator=torch.Generator().manual_seed(SEED), output_type="np")
        return (out.images[0] * 255).round().astype(np.uint8), latents.numpy()

    return run


def node_generate(
    build: Path, variations: list[dict[str, Any]], **pictures: np.ndarray
) -> list[Result]:
    """The page's pipelines through render.mjs: one loaded model, one generation
    per variation (options, its ``task`` among them, laid over the common ones),
    with the ``pictures`` (``image``, ``mask``) given to every generation."""
    return [(run["pixels"], run["latents"]) for run in node_runs(build, variations, **pictures)]


def node_runs(
    build: Path, variations: list[dict[str, Any]], **pictures: np.ndarray
) -> list[dict[str, Any]]:
    """node_generate's generations as render.mjs reports them, with each run's
    ``pixels`` (8-bit RGB) and ``latents`` as arrays."""
    options: dict[str, Any] = {
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
    for run in runs:
        rgba = np.frombuffer(base64.b64decode(run.pop("rgba")), np.uint8).reshape(h, w, 4)
        run["pixels"] = rgba[..., :3]
        run["latents"] = np.asarray(run["latents"], np.float32)
    out: list[dict[str, Any]] = runs
    return out


# --- The page (headless Chromium) -------------------------------------------


def click_generate(page: Any) -> None:
    """Click Generate and wait until the page says it is done."""
    page.evaluate("document.getElementById('status').textContent = ''")
    page.click("#generate")
    page.evaluate(
        """async () => {
            const status = document.getElementById("status");
            while (!status.textContent.startsWith("Done")) {
                if (status.classList.contains("error")) throw new Error(status.textContent);
                await new Promise((r) => setTimeout(r, 100));
            }
        }"""
    )


def canvas_rgb(page: Any) -> np.ndarray:
    """The page's canvas as 8-bit RGB."""
    data = page.evaluate(
        """() => {
            const c = document.getElementById("canvas");
            return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
        }"""
    )
    return np.asarray(data, np.uint8).reshape(64, 64, 4)[..., :3]
