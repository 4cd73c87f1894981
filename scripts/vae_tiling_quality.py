"""How far a tiled VAE decode (and encode) moves the result from the whole
one, on random weights: the page's tiling (``wsd_capture.tiles``, the same plan
and blend as ``static/js/vae_tiling.js``) and diffusers' ``enable_tiling`` at
the same tile size, each against the whole decode of the same latents (PSNR of
the 8-bit images); for the encode, the latents of one picture encoded whole
and in tiles with the same noise (the largest difference, relative to the
whole latents' largest value, and the PSNR of the two decoded whole). The
tables in docs/memory.md come from it.

usage: python scripts/vae_tiling_quality.py [--sd15-model DIR] [--sdxl-model DIR] [--json FILE]

Without --sd15-model only the tiny presets are measured; with it (a diffusers
directory of the SD 1.5 architecture, e.g. /tmp/sd15-random as
scripts/measure_compile.py writes it) also 512 x 512 with SD 1.5's VAE; with
--sdxl-model, 1024 x 1024 with SDXL's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from wsd_capture import vae_tile_shape, write_preset
from wsd_capture.tiles import decode_in_tiles, encode_in_tiles, to_pixels


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def measure(vae: AutoencoderKL, shape: tuple[int, ...]) -> dict[str, Any]:
    """Seeded latents of ``shape`` decoded whole, in our tiles and in diffusers'."""
    scaling = float(vae.config.scaling_factor)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def decode(z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = vae.decode(z / scaling).sample
        return out

    tile_shape = vae_tile_shape(shape)
    assert tile_shape is not None
    tile = tile_shape[2:]
    overlap = tuple(max(1, t // 4) for t in tile)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0)).numpy()
    with torch.no_grad():
        whole = to_pixels(decode(torch.from_numpy(latents)).double().numpy())
        ours = to_pixels(decode_in_tiles(decode, latents, tile, overlap, factor))
        vae.enable_tiling()
        vae.tile_latent_min_size, vae.tile_sample_min_size = tile[0], tile[0] * factor
        theirs = to_pixels(decode(torch.from_numpy(latents)).double().numpy())
        vae.disable_tiling()
    return {
        "latents": list(shape),
        "tile": list(tile),
        "overlap": list(overlap),
        "ours_vs_whole_db": round(psnr(ours, whole), 2),
        "diffusers_tiling_vs_whole_db": round(psnr(theirs, whole), 2),
        **measure_encode(vae, shape, tile, overlap),
    }


def _picture(height: int, width: int) -> np.ndarray:
    """A smooth seeded picture in [-1, 1]: gradients, a disc, a little noise."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height - 1, width - 1])[:, None, None]
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.08).astype(float)
    noise = np.random.default_rng(1).uniform(-0.1, 0.1, (3, height, width))
    rgb = np.stack([x, y, disc]) * 0.8 + 0.1 + noise
    return (np.clip(rgb, 0, 1) * 2 - 1)[None]


def measure_encode(
    vae: AutoencoderKL, shape: tuple[int, ...], tile: tuple[int, ...], overlap: tuple[int, ...]
) -> dict[str, Any]:
    """One picture's latents encoded whole, in our tiles and in diffusers' (the same noise)."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    image = _picture(shape[2] * factor, shape[3] * factor)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(2)).numpy()

    def encode(pixels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dist = vae.encode(pixels.float()).latent_dist
        out: torch.Tensor = dist.mean + dist.std * z.float()
        return out

    def decoded(latents: np.ndarray) -> np.ndarray:
        out = vae.decode(torch.from_numpy(latents).float()).sample
        return to_pixels(out.double().numpy())

    with torch.no_grad():
        whole = encode(torch.from_numpy(image), torch.from_numpy(noise)).double().numpy()
        ours = encode_in_tiles(encode, image, noise, tile, overlap, factor)
        vae.enable_tiling()
        vae.tile_latent_min_size, vae.tile_sample_min_size = tile[0], tile[0] * factor
        theirs = encode(torch.from_numpy(image), torch.from_numpy(noise)).double().numpy()
        vae.disable_tiling()
        reference = decoded(whole)
        scale = float(np.abs(whole).max())
        return {
            "encode_ours_rel_error": round(float(np.abs(ours - whole).max()) / scale, 4),
            "encode_diffusers_rel_error": round(float(np.abs(theirs - whole).max()) / scale, 4),
            "encode_ours_decoded_db": round(psnr(decoded(ours), reference), 2),
            "encode_diffusers_decoded_db": round(psnr(decoded(theirs), reference), 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15-model", type=Path, help="a diffusers SD 1.5 directory")
    parser.add_argument("--sdxl-model", type=Path, help="a diffusers SDXL directory")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in ("tiny-sd15", "tiny-sdxl"):
            model = write_preset(preset, Path(tmp) / preset)
            results[preset] = measure(AutoencoderKL.from_pretrained(model / "vae"), (1, 4, 8, 8))
            print(preset, results[preset], flush=True)
    if args.sd15_model is not None:
        vae = AutoencoderKL.from_pretrained(args.sd15_model / "vae")
        results["sd15-512"] = measure(vae, (1, 4, 64, 64))
        print("sd15-512", results["sd15-512"], flush=True)
    if args.sdxl_model is not None:
        vae = AutoencoderKL.from_pretrained(args.sdxl_model / "vae")
        results["sdxl-1024"] = measure(vae, (1, 4, 128, 128))
        print("sdxl-1024", results["sdxl-1024"], flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
