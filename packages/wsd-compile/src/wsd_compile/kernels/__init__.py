"""GPU kernels for WebGPU: the graph rewrites and schedules wsd compiles with.

TVM's generic GPU pipeline (legalize, fuse, dlight default schedules) is kept,
with changes by kernel family, each found by profiling the SD 1.5 UNet step
per kernel on an NVIDIA H200 through Dawn (``wsd-web bench``; see
docs/kernels.md and docs/benchmarks.md). One module per family:

* **Group norm** (``group_norm``) is rewritten before legalization into its
  statistics and one element-wise normalisation that fuses with the SiLU
  after it. The statistics come from two kernels (``group_stats``): each
  chunk's mean and sum of squares about it in one (x read from memory once,
  its second pass from the cache), then one that combines the chunks.
  TVM's single group-norm kernel reduced each group in one thread and took
  45% of the step.
* **Convolutions** (``conv2d``) are legalized as an implicit GEMM: the output
  is a reduction over ``k = (input channel, kernel row, kernel column)`` of the
  weight matrix times an im2col view of the padded input that is never
  stored, so the matmul schedule tiles it through workgroup memory like any
  matmul (the gather and the padding are inlined into the tile loads). ``k``
  runs over taps of blocks of 16 channels, and convolutions with too few
  output tiles are split along ``k`` (split-K).
* **Matmuls** (``matmul``; with them the convolutions) get wsd's own schedule,
  with larger tiles than dlight's generic default for targets it has no table
  for (which gives WebGPU 32x32 tiles of 8x8 threads, k step 8): by default
  64x64 tiles of 16x16 threads with 4x4 outputs each, k step 16, 8x8 outputs
  (128x128 tiles) for the largest matmuls, and per-shape tiles measured on a
  GPU (``tuned_tiles.json``). Matmuls of a few rows (``few_rows``: the
  time-embedding projections, two rows) are matrix-vector products instead:
  threads along the output columns and along ``k``, each weight read once.
* **Attention** (``attention``) is one kernel with an online softmax (flash
  attention): the chain ``softmax(Q K^T * scale) V`` that diffusers' classic
  attention exports is found before legalization and replaced by a call to a
  hand-scheduled kernel, so the score matrix (1 GiB in an SD 1.5 UNet at
  512x512) is never stored; scores and sums are fp32 in every build. Only
  attention whose score matrix would exceed 256 MiB is fused: below that the
  tiled matmuls and the softmax are faster.
* **fp32 accumulation** (``accumulate``): in fp16 builds, every fp16 matmul
  and convolution is rewritten before legalization to sum in fp32 and cast
  its result to fp16; the cast fuses into the kernel's epilogue, so the sum
  stays in fp32 registers and the kernel reads and writes fp16. Summing in
  fp16 (what ``ToMixedPrecision`` gives) missed the parity bar.

``passes`` puts them into TVM's pipeline as one list of passes
(``webgpu_pipeline``); ``options`` holds the record that picks which of them
a build uses (``KernelOptions``, all of them by default: ``DEFAULT_KERNELS``).
"""

from __future__ import annotations

from .accumulate import accumulate_fp32
from .attention import FUSE_ABOVE_BYTES, fuse_attention, fuse_attention_pass
from .conv2d import SPLIT_K_MIN_DEPTH, legalize_map, split_k_parts
from .few_rows import FewRowsMatmul
from .group_norm import GROUP_NORM_CHUNK, decompose_group_norm, group_norm_pass
from .matmul import (
    DEFAULT_TILES,
    LARGE_MATMUL_OUTPUTS,
    TUNED_TILES_FILE,
    MatmulShape,
    MatmulTiles,
    TiledMatmul,
    WebGPUMatmul,
    load_tile_table,
    matmul_shape,
)
from .online_softmax import (
    DEFAULT_ATTENTION_TILES,
    NARROW_ATTENTION_TILES,
    AttentionTiles,
    attention_kernel,
    attention_tiles,
)
from .options import DEFAULT_KERNELS, TVM_DEFAULT_KERNELS, KernelOptions
from .passes import webgpu_pipeline

__all__ = [
    "DEFAULT_ATTENTION_TILES",
    "DEFAULT_KERNELS",
    "DEFAULT_TILES",
    "FUSE_ABOVE_BYTES",
    "GROUP_NORM_CHUNK",
    "LARGE_MATMUL_OUTPUTS",
    "NARROW_ATTENTION_TILES",
    "SPLIT_K_MIN_DEPTH",
    "TUNED_TILES_FILE",
    "TVM_DEFAULT_KERNELS",
    "AttentionTiles",
    "FewRowsMatmul",
    "KernelOptions",
    "MatmulShape",
    "MatmulTiles",
    "TiledMatmul",
    "WebGPUMatmul",
    "accumulate_fp32",
    "attention_kernel",
    "attention_tiles",
    "decompose_group_norm",
    "fuse_attention",
    "fuse_attention_pass",
    "group_norm_pass",
    "legalize_map",
    "load_tile_table",
    "matmul_shape",
    "split_k_parts",
    "webgpu_pipeline",
]
