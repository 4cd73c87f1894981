"""Convolutions of a few output channels: the UNet's and the VAE decoder's last.

A UNet ends in ``conv_out`` (320 channels to 4, 3x3) and a VAE decoder in one
from 128 channels to 3, at the image's full size. As an implicit GEMM
(:mod:`.conv2d`) the matmul schedule tiles the output channels as it tiles
any columns: a tile of 32 or more holds 3 of them, and the kernel loads, sums
and discards the rest. At SD 1.5 512 the decoder's ``conv_out`` took 1.58 ms
of a 39 ms decode on the H200, for 1.8 GFLOP and 64 MiB read.

:func:`few_channels_conv2d` computes such a convolution directly: a sum over
(input channel, kernel row, kernel column), the padding a bounds check, in
one block annotated ``wsd.few_channels``. :class:`FewChannelsConv` gives each
thread one output pixel and every output channel of it:

* the sums of all the pixel's channels are in registers, so each input
  element of the pixel's window is read once for all of them;
* the weights are the same for every thread of the workgroup at each step
  (one broadcast load each);
* the threads of a workgroup take consecutive pixels of a row: their loads
  are coalesced, and neighbouring windows share the cache's lines;
* the kernel rows and columns are unrolled (constant offsets and checks),
  and the epilogue fused after it (bias, casts, a residual) is applied where
  the sums land.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir, te, tirx
from tvm.s_tir.dlight.analysis import get_root_block
from tvm.s_tir.dlight.gpu.base import GPUScheduleRule

from .shapes import output_size

#: Convolutions of at most this many output channels are computed directly.
FEW_CHANNELS = 8
#: ... where it has at least this many output pixels per element of a pixel's
#: sum (input channels x taps): with fewer, too few threads run too long a sum.
#: SD 1.5 512's UNet ``conv_out`` (8192 pixels, sums of 2880) took 0.19 ms
#: so against 0.15 ms as an implicit GEMM split along k (H100); the VAE's
#: (262144 pixels, sums of 1152) 0.24 ms against 1.49 ms.
PIXELS_PER_TERM = 4
#: The block annotation that marks such a convolution.
FEW_CHANNELS_ANNOTATION = "wsd.few_channels"
#: The stage of the input's windows (zero outside the input, in the sum's type).
TAP_BLOCK = "conv2d_few_tap"
#: Threads a workgroup: a multiple of a subgroup (not tuned); the smallest
#: full-size convolution it takes, SDXL 1024's UNet ``conv_out`` (32768
#: pixels), makes 512 workgroups.
THREADS = 64


def few_channels_conv2d(
    data: te.Tensor,
    weight: te.Tensor,
    *,
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
    out_dtype: str,
) -> te.Tensor:
    """NCHW x OIHW convolution summed in ``out_dtype`` over (input channel,
    kernel row, kernel column), zero outside the input: the block
    :class:`FewChannelsConv` schedules."""
    n, cin, height, width = (int(d) for d in data.shape)
    cout, _, kh, kw = (int(d) for d in weight.shape)
    top, left, _, _ = padding
    out_h, out_w = output_size(height, width, (kh, kw), strides, padding)
    c = te.reduce_axis((0, cin), name="c")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")

    def window(b: Any, ci: Any, y: Any, x: Any, i: Any, j: Any) -> Any:
        iy = y * strides[0] + i - top
        ix = x * strides[1] + j - left
        inside = tirx.all(iy >= 0, iy < height, ix >= 0, ix < width)
        value = tirx.if_then_else(inside, data[b, ci, iy, ix], tirx.const(0, data.dtype))
        return value.astype(out_dtype)

    # A stage of its own, so that the schedule reads each element once for every channel.
    taps = te.compute((n, cin, out_h, out_w, kh, kw), window, name=TAP_BLOCK)

    def at(b: Any, o: Any, y: Any, x: Any) -> Any:
        product = taps[b, c, y, x, ry, rx] * weight[o, c, ry, rx].astype(out_dtype)
        return te.sum(product, axis=[c, ry, rx])

    return te.compute(
        (n, cout, out_h, out_w),
        at,
        name="conv2d_few",
        attrs={FEW_CHANNELS_ANNOTATION: cout},
    )


def takes_few_channels(channels: int, pixels: int, terms: int, max_channels: int) -> bool:
    """Whether a convolution of ``channels`` output channels, ``pixels``
    output pixels and sums of ``terms`` (input channels x taps) is summed
    directly: at most ``max_channels`` channels, at least ``PIXELS_PER_TERM``
    pixels a term."""
    return channels <= max_channels and pixels >= PIXELS_PER_TERM * terms


class FewChannelsConv(GPUScheduleRule):  # type: ignore[misc]
    """A thread per output pixel summing all its channels (see the module);
    None for any kernel without an annotated convolution."""

    def apply(self, func: Any, target: tvm.target.Target, _tunable: bool) -> Any:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        found = few_channels_loops(sch)
        if found is None:
            return None
        main, pixels = found
        bx, tx = sch.split(pixels, [None, THREADS])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
        # The sums in registers; the epilogue (the blocks after the sum, folded
        # into the last of them) per pixel, where its sums land.
        after = _blocks_around(sch, main)[1]
        for block in after[:-1]:
            try:
                sch.compute_inline(block)
            except tvm.error.TVMError:
                return None
        if after:
            sch.set_scope(main, 0, "local")
            sch.reverse_compute_at(after[-1], tx, preserve_unit_loops=True)
        else:
            sch.reverse_compute_at(sch.cache_write(main, 0, "local"), tx, preserve_unit_loops=True)
        sch.decompose_reduction(main, sch.get_loops(main)[2])
        return sch


def few_channels_loops(sch: s_tir.Schedule) -> tuple[Any, Any] | None:
    """The annotated convolution of ``sch`` with the blocks before it (its
    prologue: an activation, a cast) inlined, its loops as the (image, row,
    column) pixels fused, then the input channels, the kernel rows and
    columns (unrolled) and the output channels (unrolled): ``(block,
    pixels)``. None where
    ``sch`` has no such block, or a block before it that cannot be inlined."""
    marked = [
        b
        for b in sch.get_child_blocks(get_root_block(sch))
        if FEW_CHANNELS_ANNOTATION in sch.get(b).annotations
    ]
    if len(marked) != 1:
        return None
    main = marked[0]
    before = _blocks_around(sch, main)[0]
    taps = [b for b in before if sch.get(b).name_hint == TAP_BLOCK]
    if len(taps) != 1:
        return None
    for block in before:
        if not block.same_as(taps[0]):
            try:
                sch.compute_inline(block)
            except tvm.error.TVMError:
                return None
    b, o, y, x, c, ry, rx = sch.get_loops(main)
    sch.reorder(b, y, x, c, ry, rx, o)
    pixels = sch.fuse(b, y, x)
    # Each element of the window once, in a register, for all the output channels.
    sch.compute_at(taps[0], rx, preserve_unit_loops=True)
    sch.set_scope(taps[0], 0, "local")
    for loop in (ry, rx, o):
        sch.unroll(loop)
    return main, pixels


def _blocks_around(sch: s_tir.Schedule, main: Any) -> tuple[list[Any], list[Any]]:
    """The root's blocks before ``main`` and after it, in program order."""
    blocks = list(sch.get_child_blocks(get_root_block(sch)))
    index = next(i for i, b in enumerate(blocks) if sch.get(b).same_as(sch.get(main)))
    return blocks[:index], blocks[index + 1 :]
