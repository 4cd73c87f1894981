"""``vae_encode``: the first step of image to image, against diffusers' own pipelines.

diffusers' image-to-image pipelines draw twice from the generator: the
sample of the encoder's latent distribution, then the noise they add. The
graph takes the first draw as its ``noise`` input; the page draws the two in
the same order from its torch-compatible generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

from wsd_capture import capture_sd15, load_sd15, load_sdxl, write_preset
from wsd_capture.capture import VaeEncodeGraph

SEED = 11


def _image(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(3)) * 2 - 1


def _ours(vae: Any, image: torch.Tensor, latent_stats: bool, scheduler: Any) -> torch.Tensor:
    """The graph's latents, with the pipeline's draws and its noise added, as the page will."""
    generator = torch.Generator().manual_seed(SEED)
    h, w = image.shape[2] // 8, image.shape[3] // 8
    shape = (1, int(vae.config.latent_channels), h, w)
    sample_noise = torch.randn(shape, generator=generator)
    added_noise = torch.randn(shape, generator=generator)
    with torch.no_grad():
        latents = VaeEncodeGraph(vae, latent_stats=latent_stats)(image, sample_noise)
    timestep = torch.tensor([scheduler.timesteps[3]])
    out: torch.Tensor = scheduler.add_noise(latents, added_noise, timestep)
    return out


# SD 1.5's image-to-image pipeline has no latents_mean/latents_std; SDXL's applies them.
@pytest.mark.parametrize(
    ("kind", "latents_mean"), [("sd15", False), ("sdxl", False), ("sdxl", True)]
)
def test_vae_encode_matches_the_img2img_pipeline(
    tmp_path: Path, kind: str, latents_mean: bool
) -> None:
    model_dir = write_preset(f"tiny-{kind}", tmp_path / kind)
    base = load_sd15(model_dir) if kind == "sd15" else load_sdxl(model_dir)
    cls = StableDiffusionImg2ImgPipeline if kind == "sd15" else StableDiffusionXLImg2ImgPipeline
    pipe = cls(**base.components)
    channels = int(pipe.vae.config.latent_channels)
    if latents_mean:
        pipe.vae.register_to_config(
            latents_mean=[0.1 * (i + 1) for i in range(channels)],
            latents_std=[0.5 + 0.25 * i for i in range(channels)],
        )
    pipe.scheduler.set_timesteps(8)
    image = _image((1, 3, 64, 64))
    timestep = pipe.scheduler.timesteps[3:4]
    with torch.no_grad():
        expected = pipe.prepare_latents(
            image,
            timestep,
            1,
            1,
            torch.float32,
            torch.device("cpu"),
            generator=torch.Generator().manual_seed(SEED),
        )

    got = _ours(pipe.vae, image, latent_stats=kind == "sdxl", scheduler=pipe.scheduler)

    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    # The image matters: another one gives other latents.
    other = _ours(pipe.vae, _image((1, 3, 64, 64)).flip(-1), kind == "sdxl", pipe.scheduler)
    assert not torch.allclose(other, expected, atol=1e-2)


def test_the_capture_holds_vae_encode(tmp_path: Path) -> None:
    captured = capture_sd15(load_sd15(write_preset("tiny-sd15", tmp_path / "tiny")))
    spec = captured.components["vae_encode"].spec
    assert [(t.name, t.shape) for t in spec.inputs] == [
        ("image", (1, 3, 64, 64)),
        ("noise", (1, 4, 8, 8)),
    ]
    assert [(t.name, t.shape) for t in spec.outputs] == [("latents", (1, 4, 8, 8))]
    assert captured.metadata.components["vae_encode"] == spec
