"""The im2col matrix of a convolution on tensor cores, and its schedule.

On the subgroup-matrix path a convolution is an injective kernel that writes
the transposed im2col matrix (:func:`im2col_t`, ``[c kh kw, n oh ow]`` in
fp16) and a product that reads it (:mod:`.subgroup_matrix`). The activation
before the convolution (SiLU, a cast, a slice of rows) fuses into the
im2col kernel.

dlight's fallback schedule gives such a kernel one element of the matrix a
thread: every thread splits its flat index into channel, tap, image, row and
column (four divisions by constants that are not powers of two, through
WGSL's checked integer division) and computes the activation of the one
input it reads. On the H200 that ran at about 0.5 TB/s, 4.6 ms of SD 1.5
512's UNet step: bound by the integer arithmetic, not by memory.

:class:`Im2colSchedule` gives each thread one (channel, image, output pixel)
and all the kernel's taps of it, unrolled: the split of the index is done
once for ``kh x kw`` elements, and each tap's offsets are constants. The
threads of a workgroup take consecutive pixels, so each of a thread's
stores is one coalesced row of the matrix across the workgroup, as before.
It finds the kernel by the block annotation :func:`im2col_t` leaves
(``wsd.im2col``: channels, taps, images, pixels), which survives fusion.

Where an image's pixels are in 4s (every SD shape) and the matrix is fp16, a
thread takes 4 consecutive pixels: each tap's 4 values are computed into
registers and stored as one ``vec4<f16>`` (TVM writes the vector store into
its array of halves as 4 lines; the page makes them one store of an
``array<vec4<f16>>``: ``js/wgsl_rewrite.js``). The kernels are bound by
writing the matrix, nine halves per input element, and a warp's 2-byte
stores move 64 bytes an instruction where 8-byte ones move 256.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir, te, tirx
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import max_threads_per_block, try_inline
from tvm.s_tir.dlight.gpu.base import GPUScheduleRule

from .shapes import output_size

#: The block annotation that marks an im2col matrix and gives its factors.
IM2COL_ANNOTATION = "wsd.im2col"


def im2col_t(
    data: te.Tensor,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    padding: tuple[int, int, int, int],
) -> te.Tensor:
    """The transposed im2col matrix of an NCHW input: ``[c kh kw, n oh ow]``,
    zero outside the input. ``k`` is (channel, kernel row, kernel column), as
    an OIHW weight flattens; ``m`` (image, row, column) is contiguous, so the
    kernel that writes it reads the input along its rows."""
    n, cin, height, width = (int(d) for d in data.shape)
    kh, kw = kernel
    top, left, _, _ = padding
    out_h, out_w = output_size(height, width, kernel, strides, padding)
    taps, pixels = kh * kw, out_h * out_w

    def at(k: Any, m: Any) -> Any:
        c, tap = k // taps, k % taps
        b, y, x = m // pixels, m % pixels // out_w, m % out_w
        iy = y * strides[0] + tap // kw - top
        ix = x * strides[1] + tap % kw - left
        inside = tirx.all(iy >= 0, iy < height, ix >= 0, ix < width)
        return tirx.if_then_else(inside, data[b, c, iy, ix], tirx.const(0, data.dtype))

    factors = [cin, taps, n, pixels]
    return te.compute(
        (cin * taps, n * pixels), at, name="im2col", attrs={IM2COL_ANNOTATION: factors}
    )


class Im2colSchedule(GPUScheduleRule):  # type: ignore[misc]
    """A thread per (channel, image, pixel) writing every tap of it (above);
    None for any kernel that is not an annotated im2col matrix with its
    producers inlined."""

    def apply(self, func: Any, target: tvm.target.Target, _tunable: bool) -> Any:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        if infos is None:
            return None
        infos = try_inline(sch, infos)
        if len(infos) != 1:
            return None
        found = im2col_loops(sch, infos[0].block_rv)
        if found is None:
            return None
        threads, tap, lane = found
        if lane is not None:
            # Each tap's pixels written from registers as one vector (the page
            # makes it one store: js/wgsl_rewrite.js).
            written = sch.cache_write(infos[0].block_rv, 0, "local")
            sch.reverse_compute_at(written, tap)
            sch.unroll(lane)
            sch.vectorize(sch.get_loops(written)[-1])
        # A workgroup of the target's most threads (WebGPU: 256), as dlight's fallback.
        bx, tx = sch.split(threads, [None, max_threads_per_block(target)])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
        sch.unroll(tap)
        return sch


#: Consecutive pixels a thread writes of each tap, as one vector, where an
#: fp16 matrix's images have their pixels in such vectors.
VECTOR = 4


def im2col_loops(sch: s_tir.Schedule, block: Any) -> tuple[Any, Any, Any] | None:
    """The loops of an annotated im2col ``block`` as (channel, image, pixel)
    fused, then the taps, then (where its images' pixels are in :data:`VECTOR`s
    and it is fp16) the :data:`VECTOR` consecutive pixels a thread takes, else
    None: the loop the threads take, the one each thread runs, and its lanes.
    None if ``block`` is not an im2col matrix over its two loops."""
    factors = sch.get(block).annotations.get(IM2COL_ANNOTATION)
    loops = sch.get_loops(block)
    if factors is None or len(loops) != 2:
        return None
    cin, taps, images, pixels = (int(f) for f in factors)
    channel, tap = sch.split(loops[0], [cin, taps])
    image, pixel = sch.split(loops[1], [images, pixels])
    if pixels % VECTOR or str(sch.get(block).writes[0].source.dtype) != "float16":
        sch.reorder(channel, image, pixel, tap)
        return sch.fuse(channel, image, pixel), tap, None
    pixel, lane = sch.split(pixel, [pixels // VECTOR, VECTOR])
    sch.reorder(channel, image, pixel, tap, lane)
    return sch.fuse(channel, image, pixel), tap, lane
