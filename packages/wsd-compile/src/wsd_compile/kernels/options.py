"""Which of wsd's kernels a build uses: one record, all of them by default."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .attention import FUSE_ABOVE_BYTES
from .combine_products import COMBINE_MIN_ROWS
from .few_channels import FEW_CHANNELS
from .few_rows import MAX_ROWS
from .flash_attention import FlashTiles
from .half_activations import HALF_ACTIVATIONS
from .matmul import DEFAULT_TILES, MatmulShape, MatmulTiles, load_tile_table
from .subgroup_matrix import IM2COL_MAX_BYTES, LARGE_BLOCKS_FROM, SPLIT_K_WORKGROUPS
from .subgroup_tiles import TILES, TilePolicy


@dataclass(frozen=True)
class KernelOptions:
    """Which of the rewrites and schedules a build uses (all by default;
    each can be turned off to measure what it brings)."""

    group_norm: bool = True
    #: ... its statistics from two hand-scheduled kernels: one per chunk of a group
    #: (x read from memory once; the second pass over the chunk is from the cache) and
    #: one that combines the chunks (:mod:`~wsd_compile.kernels.group_stats`); False:
    #: Relax sums of x and of its squares about the mean, two kernels each.
    group_norm_stats_kernels: bool = True
    implicit_gemm: bool = True
    tiles: MatmulTiles | None = DEFAULT_TILES
    #: wsd's own matmul schedule (:class:`.WebGPUMatmul`); False: dlight's
    #: rule with ``tiles`` (:class:`.TiledMatmul`).
    own_matmul: bool = True
    #: Per-shape tiles measured on a GPU (:func:`.load_tile_table`); shapes not
    #: in it get ``tiles``, twice the register tile for large ones if ``adaptive``.
    table: tuple[tuple[MatmulShape, MatmulTiles], ...] = field(
        default_factory=lambda: tuple(load_tile_table().items())
    )
    adaptive: bool = True
    #: ... each thread owning neighbouring outputs, read from workgroup tiles
    #: stored k-major as vectors of 4 (False, the default: outputs strided by
    #: the thread count, read a word at a time: docs/kernels.md).
    matmul_contiguous: bool = False
    #: Matmuls of at most this many rows as matrix-vector products
    #: (:class:`.FewRowsMatmul`: the time-embedding projections; 0: tiled as the rest).
    few_rows: int = MAX_ROWS
    #: Implicit-GEMM ``k`` order: taps of blocks of this many input channels
    #: (0: channel-major, the plain im2col order).
    channel_block: int = 16
    #: Convolutions of at most this many output channels (``conv_out``) summed
    #: directly, a thread per output pixel (:class:`.FewChannelsConv`; 0: as
    #: implicit GEMMs, their channels padded to the matmul's tile).
    few_channels: int = FEW_CHANNELS
    #: Split-K: convolutions with fewer 64x64 output tiles than this are
    #: computed as partial sums over ranges of k, then added up, so that the
    #: GPU gets enough workgroups (:func:`.split_k_parts`; 0: never).
    split_k_tiles: int = 1024
    #: Attention as one kernel with an online softmax (the ``attention`` module),
    #: instead of two matmuls around a softmax over a stored score matrix.
    fused_attention: bool = True
    #: ... for attention whose fp32 score matrix would be larger than this
    #: (``FUSE_ABOVE_BYTES``, 256 MiB; 0: every attention).
    fused_attention_min_bytes: int = FUSE_ABOVE_BYTES
    #: fp16 matmuls and convolutions sum in fp32 registers and write fp16
    #: (``accumulate_fp32``, in the ``accumulate`` module); False: they sum in fp16.
    fp32_accumulate: bool = True
    #: fp16 matmuls that sum in fp32 on tensor cores (``subgroup_matrix`` module):
    #: only for a library run where the device has subgroup matrices (the
    #: ``subgroup-matrix`` kernel path), so off by default.
    subgroup_matrix: bool = False
    #: ... split along k where a product has fewer blocks (subgroups) than this
    #: (:func:`.subgroup_gemm.split_k`; 0: never).
    subgroup_split_k_workgroups: int = SPLIT_K_WORKGROUPS
    #: ... and attention is not fused there: its matmuls run on tensor cores,
    #: in ranges of query rows whose fp32 scores take at most this many bytes
    #: (:mod:`.chunked_attention`; 0: the fused kernel, as on the other paths).
    subgroup_attention_chunk_bytes: int = FUSE_ABOVE_BYTES
    #: On the other paths (shader-f16, fp32), the attentions that would be fused
    #: (scores above ``fused_attention_min_bytes``) as the same chunked products
    #: instead, the products on the scalar matmul schedule (0, the default: the
    #: fused kernel, which measured as fast on the H100: docs/kernels.md).
    attention_chunk_bytes: int = 0
    #: ... or, where it takes the attention, one kernel on tensor cores with an
    #: online softmax (:mod:`~wsd_compile.kernels.flash_attention`, tiled by these).
    #: None, the default: the chunked products, which are faster today
    #: (docs/kernels.md; its GPU parity: docs/benchmarks/gpu-parity-flash.json).
    subgroup_flash_attention: FlashTiles | None = None
    #: ... and convolutions whose im2col matrix (fp16) would be larger than this
    #: run in ranges of output rows, each within it (:func:`.subgroup_matrix.conv_row_ranges`).
    subgroup_im2col_max_bytes: int = IM2COL_MAX_BYTES
    #: ... and products that make at least this many blocks of 64 x 64 run in
    #: them (:func:`.subgroup_gemm.gemm_blocks`; the GPU parity builds set 1,
    #: so that the tiny presets' products take them too).
    subgroup_large_blocks_from: int = LARGE_BLOCKS_FROM
    #: ... and which products share workgroup tiles among several subgroups
    #: (:class:`.subgroup_tiles.TilePolicy`: ``TILES``, the measured policy, whose
    #: GPU parity is on record in docs/benchmarks/gpu-parity-tiles.json; ``NO_TILES``:
    #: the one-subgroup kernel everywhere).
    subgroup_tiles: TilePolicy = TILES
    #: ... and products by weights that read one activation of at least this many
    #: rows (an attention's query, key and value projections; the cross-attentions'
    #: keys and values of the text) made one product, 4 at most
    #: (:mod:`~wsd_compile.kernels.combine_products`; 0: each its own). GPU parity:
    #: docs/benchmarks/gpu-parity-combine.json, gpu-parity-lora-combine.json.
    subgroup_combine_from: int = COMBINE_MIN_ROWS
    #: Functions whose fp32 activations (what fp16 arithmetic leaves in fp32
    #: between kernels: residual sums, biases added, group norms' inputs) are
    #: stored in fp16 (:mod:`~wsd_compile.kernels.half_activations`): the VAE
    #: decoders by default; () keeps them fp32.
    half_activations: tuple[str, ...] = HALF_ACTIVATIONS
    #: Casts to fp16 of a reshaped fp32 value made before the reshape, so that
    #: they fuse into the kernel writing the value (a layer norm before a
    #: product: :mod:`~wsd_compile.kernels.narrow_casts`); False keeps them after.
    narrow_before_reshape: bool = True

    def without(self, **changes: Any) -> KernelOptions:
        return replace(self, **changes)


#: All of wsd's kernels: what a build uses unless told otherwise.
DEFAULT_KERNELS = KernelOptions()
#: TVM's own lowering and dlight defaults, as before wsd's kernels.
TVM_DEFAULT_KERNELS = KernelOptions(
    group_norm=False,
    implicit_gemm=False,
    tiles=None,
    own_matmul=False,
    table=(),
    few_rows=0,
    few_channels=0,
    fused_attention=False,
    fp32_accumulate=False,
    narrow_before_reshape=False,
)
