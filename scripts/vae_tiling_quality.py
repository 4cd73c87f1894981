"""How far a tiled VAE decode moves the image from the whole decode, on random
weights: the page's tiling (``wsd_capture.tiles``, the same plan and blend as
``static/js/vae_tiling.js``) and diffusers' ``enable_tiling`` at the same tile
size, each against the whole decode of the same latents (PSNR of the 8-bit
images). The table in docs/memory.md comes from it.

usage: python scripts/vae_tiling_quality.py [--sd15-model DIR] [--json FILE]

Without --sd15-model only the tiny presets are measured; with it (a diffusers
directory of the SD 1.5 architecture, e.g. /tmp/sd15-random as
scripts/measure_compile.py writes it) also 512 x 512 with SD 1.5's VAE.
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
from wsd_capture.tiles import decode_in_tiles, to_pixels


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
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd15-model", type=Path, help="a diffusers SD 1.5 directory")
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
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
