"""The page's tiled VAE decode and encode (wsd-web's ``static/js/vae_tiling.js``)
in NumPy and PyTorch, the reference its tests compare with: the same plan (the
fewest tiles per axis that overlap their neighbours by at least the overlap,
spread evenly), the same blend (linear ramps across each overlap, a weighted
mean), with any decoder or encoder on each tile (diffusers' own, in the tests).

Decoding blends the tiles' images (the ramps in image pixels); encoding blends
the tiles' latents (the ramps in latent pixels), each tile's latents sampled
with the noise of its own latent pixels, so where tiles overlap the blend is
the blended mean plus the blended standard deviation times the same noise."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along an axis of ``size`` start."""
    if tile >= size:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap))
    # JavaScript's Math.round: halves round up.
    return [math.floor(k * (size - tile) / (count - 1) + 0.5) for k in range(count)]


def ramp(starts: list[int], index: int, tile: int, factor: int) -> np.ndarray:
    """Tile ``index``'s blend weights along the axis, per image pixel."""
    length = tile * factor
    x = np.arange(length, dtype=np.float64) + 0.5
    weights = np.ones(length)
    if index > 0:
        weights = np.minimum(weights, x / ((starts[index - 1] + tile - starts[index]) * factor))
    if index + 1 < len(starts):
        shared = (starts[index] + tile - starts[index + 1]) * factor
        weights = np.minimum(weights, (length - x) / shared)
    return weights


def decode_in_tiles(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latents: np.ndarray,
    tile: Sequence[int],
    overlap: Sequence[int],
    factor: int,
) -> np.ndarray:
    """``latents`` [1, C, H, W] decoded tile by tile with ``decode`` and blended:
    the image [1, 3, H * factor, W * factor] in float64."""
    _, _, height, width = latents.shape
    rows = tile_starts(height, tile[0], overlap[0])
    cols = tile_starts(width, tile[1], overlap[1])
    total = np.zeros((1, 3, height * factor, width * factor))
    weight = np.zeros((height * factor, width * factor))
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            crop = latents[:, :, top : top + tile[0], left : left + tile[1]]
            with torch.no_grad():
                pixels = decode(torch.from_numpy(np.ascontiguousarray(crop))).double().numpy()
            w = np.outer(ramp(rows, i, tile[0], factor), ramp(cols, j, tile[1], factor))
            ys = slice(top * factor, (top + tile[0]) * factor)
            xs = slice(left * factor, (left + tile[1]) * factor)
            total[:, :, ys, xs] += w * pixels
            weight[ys, xs] += w
    blended: np.ndarray = total / weight
    return blended


def encode_in_tiles(
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    image: np.ndarray,
    noise: np.ndarray,
    tile: Sequence[int],
    overlap: Sequence[int],
    factor: int,
) -> np.ndarray:
    """``image`` [1, 3, H, W] encoded tile by tile with ``encode`` (a tile's image
    and its latent pixels' ``noise`` [1, C, H / factor, W / factor] to its
    latents) and blended: the latents [1, C, H / factor, W / factor] in float64.
    ``tile`` and ``overlap`` are in latent pixels."""
    _, channels, height, width = noise.shape
    if image.shape[2:] != (height * factor, width * factor):
        raise ValueError(
            f"an image of {image.shape[2:]} does not encode to latents of {(height, width)} "
            f"at a factor of {factor}"
        )
    rows = tile_starts(height, tile[0], overlap[0])
    cols = tile_starts(width, tile[1], overlap[1])
    total = np.zeros((1, channels, height, width))
    weight = np.zeros((height, width))
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            ys = slice(top, top + tile[0])
            xs = slice(left, left + tile[1])
            pixels = image[:, :, top * factor : ys.stop * factor, left * factor : xs.stop * factor]
            with torch.no_grad():
                latents = encode(
                    torch.from_numpy(np.ascontiguousarray(pixels)),
                    torch.from_numpy(np.ascontiguousarray(noise[:, :, ys, xs])),
                )
            w = np.outer(ramp(rows, i, tile[0], 1), ramp(cols, j, tile[1], 1))
            total[:, :, ys, xs] += w * latents.double().numpy()
            weight[ys, xs] += w
    blended: np.ndarray = total / weight
    return blended


def to_pixels(image: np.ndarray) -> np.ndarray:
    """A decoder's [1, 3, H, W] output in [-1, 1] as diffusers' 8-bit [H, W, 3] image."""
    unit = np.clip(image[0].transpose(1, 2, 0) / 2 + 0.5, 0, 1)
    pixels: np.ndarray = (unit * 255).round().astype(np.uint8)
    return pixels
