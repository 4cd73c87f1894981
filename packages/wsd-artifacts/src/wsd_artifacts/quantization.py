"""Quantized weights as the shards hold them: integers packed in 32-bit words, a scale per group.

``wsd-compile ... --quantize int8|int4`` stores the weights of the UNet's
convolutions and linear layers and of the text encoders' linear layers as
integers; embeddings, norms, biases and the VAE stay in the build's precision.

* **int8** (``W8A16``): one scale per output channel; the weight is
  ``round(w / s)`` in ``[-127, 127]`` with ``s = max|w| / 127``.
* **int4**: one scale per group of 32 consecutive elements along the
  reduction axis (input channels; for a convolution, at each tap); levels
  ``[-7, 7]`` with ``s = max|w_group| / 7``.

Scales are float16 values (stored as float32 in an fp32 build, whose
shaders must not need ``shader-f16``). The integers are stored offset by
``2^(bits-1)`` (so unsigned) and packed along the reduction axis, ``32 / bits``
to a ``uint32`` word, lowest bits first: WebGPU has no 8-bit storage. The
reduction axis is the first of a linear layer's weight as the graph holds it
(``[in, out]``, transposed at build time) and the second of a convolution's
(``[out, in, kh, kw]``); the scales have the weight's rank, with the
reduction axis divided by the group (``1`` for int8, as every axis but the
output channels).

The dequantized weight is ``(q - zero) * s`` computed in the build's
precision: :func:`dequantize_weight` here (numpy: what the PyTorch
reference, ``wsd_capture.quantize_torch_model``, loads), and
``wsd_compile.quantize.dequantize_te`` in the kernels. The quantization
runs at build time on the CPU and is deterministic (round half to even).
This module is the format's one definition (numpy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ArtifactError

#: The name of the packing in the manifest (``components.*.quantization.format``):
#: what a page must know to upload the weights.
WEIGHT_FORMAT = "packed-uint32"

#: What ``--quantize`` takes: no quantization, or a scheme of :data:`SCHEMES`.
QUANTIZE_CHOICES = ("none", "int8", "int4")


@dataclass(frozen=True)
class QuantScheme:
    """How weights are quantized: ``bits`` per integer, a scale per output
    channel (``group`` None) or per ``group`` elements along the reduction axis."""

    name: str
    bits: int
    group: int | None

    @property
    def per_word(self) -> int:
        """Integers in one ``uint32`` word."""
        return 32 // self.bits

    @property
    def zero(self) -> int:
        """The offset that makes the stored integers unsigned."""
        return 1 << (self.bits - 1)

    @property
    def levels(self) -> int:
        """The largest magnitude of a level: ``2^(bits-1) - 1``."""
        return self.zero - 1

    def to_json(self) -> dict[str, Any]:
        return {"scheme": self.name, "bits": self.bits, "group": self.group}


#: The schemes by name: ``int8`` (a scale per output channel) and ``int4``
#: (a scale per 32 weights along the reduction axis).
SCHEMES: dict[str, QuantScheme] = {
    "int8": QuantScheme("int8", 8, None),
    "int4": QuantScheme("int4", 4, 32),
}


def quantizable(shape: Sequence[int], q: QuantScheme, pack_axis: int) -> bool:
    """Whether a weight of ``shape`` packs and groups evenly along ``pack_axis``."""
    depth = int(shape[pack_axis])
    return depth % q.per_word == 0 and (q.group is None or depth % q.group == 0)


def scale_shape(shape: Sequence[int], q: QuantScheme, pack_axis: int, out_axis: int) -> list[int]:
    """The shape of the scales of a weight of ``shape``."""
    dims = [1] * len(shape)
    dims[out_axis] = int(shape[out_axis])
    if q.group is not None:
        dims = [int(d) for d in shape]
        dims[pack_axis] = int(shape[pack_axis]) // q.group
    return dims


def _scales(w: np.ndarray, q: QuantScheme, pack_axis: int, out_axis: int) -> np.ndarray:
    """The float16 scales of ``w`` (float32), shaped by :func:`scale_shape`."""
    if q.group is None:
        axes = tuple(a for a in range(w.ndim) if a != out_axis)
        peak = np.max(np.abs(w), axis=axes, keepdims=True)
    else:
        split = list(w.shape)
        split[pack_axis : pack_axis + 1] = [w.shape[pack_axis] // q.group, q.group]
        peak = np.max(np.abs(w.reshape(split)), axis=pack_axis + 1)
    wide = peak / q.levels
    if not np.all(np.isfinite(wide)) or wide.max(initial=0) > np.finfo(np.float16).max:
        raise ArtifactError(
            "a weight is too large (or not finite) for float16 scales; build without --quantize"
        )
    s = wide.astype(np.float16)
    # An all-zero group: any scale gives level 0; 1 keeps the division defined.
    return np.where(s == 0, np.float16(1), s)


def _expand(scales: np.ndarray, shape: Sequence[int], pack_axis: int) -> np.ndarray:
    """``scales`` repeated along ``pack_axis`` to the weight's ``shape`` (a view where it can)."""
    s = scales
    if s.shape[pack_axis] not in (1, shape[pack_axis]):
        s = np.repeat(s, shape[pack_axis] // s.shape[pack_axis], axis=pack_axis)
    return np.broadcast_to(s, tuple(shape))


def quantize_weight(
    w: np.ndarray, q: QuantScheme, *, pack_axis: int, out_axis: int, scale_dtype: str = "float16"
) -> tuple[np.ndarray, np.ndarray]:
    """``w`` as packed ``uint32`` words and scales (``scale_dtype``, float16 values)."""
    if not quantizable(w.shape, q, pack_axis):
        raise ArtifactError(
            f"a weight of shape {list(w.shape)} does not pack into {q.name} along axis {pack_axis}"
        )
    w32 = np.asarray(w, dtype=np.float32)
    scales = _scales(w32, q, pack_axis, out_axis)
    full = _expand(scales.astype(np.float32), w32.shape, pack_axis)
    levels = np.clip(np.rint(w32 / full), -q.levels, q.levels).astype(np.int64) + q.zero
    # Pack along the reduction axis: move it last, group per word, shift and add.
    moved = np.moveaxis(levels, pack_axis, -1)
    words = moved.reshape(*moved.shape[:-1], moved.shape[-1] // q.per_word, q.per_word)
    shifts = np.arange(q.per_word, dtype=np.int64) * q.bits
    packed = np.bitwise_or.reduce(words << shifts, axis=-1).astype(np.uint32)
    return np.ascontiguousarray(np.moveaxis(packed, -1, pack_axis)), scales.astype(scale_dtype)


def dequantize_weight(
    packed: np.ndarray,
    scales: np.ndarray,
    q: QuantScheme,
    *,
    pack_axis: int,
    dtype: str = "float16",
) -> np.ndarray:
    """The weight that ``packed`` and ``scales`` stand for, computed in ``dtype``
    as the kernels do: ``level * scale``, both converted to ``dtype`` first."""
    moved = np.moveaxis(packed.astype(np.int64), pack_axis, -1)
    shifts = np.arange(q.per_word, dtype=np.int64) * q.bits
    levels = (moved[..., None] >> shifts) & ((1 << q.bits) - 1)
    levels = levels.reshape(*moved.shape[:-1], moved.shape[-1] * q.per_word) - q.zero
    levels = np.moveaxis(levels, -1, pack_axis)
    full = _expand(scales.astype(dtype), levels.shape, pack_axis)
    result: np.ndarray = levels.astype(dtype) * full
    return result


def reference_weight(
    w: np.ndarray, q: QuantScheme, *, pack_axis: int, out_axis: int, dtype: str
) -> np.ndarray:
    """``w`` quantized and dequantized as a build does (what a PyTorch reference loads)."""
    packed, scales = quantize_weight(w, q, pack_axis=pack_axis, out_axis=out_axis)
    return dequantize_weight(packed, scales, q, pack_axis=pack_axis, dtype=dtype)
