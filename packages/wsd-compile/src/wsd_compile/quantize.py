"""Quantized weights in the kernels: the dequantization as a TE stage, and `--quantize`.

The format (packed ``uint32`` integers, float16 scales, which weights) is
``wsd_artifacts.quantization``'s, re-exported here; this module adds
:func:`dequantize_te`, the stage the matmul and convolution kernels inline
into their tile loads (``kernels.dequantize``), and :func:`scheme`, which
reads ``--quantize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tvm import te, tirx

from wsd_artifacts.quantization import (
    QUANTIZE_CHOICES,
    SCHEMES,
    WEIGHT_FORMAT,
    QuantScheme,
    dequantize_weight,
    quantizable,
    quantize_weight,
    reference_weight,
    scale_shape,
)

from .errors import WsdCompileError

__all__ = [
    "QUANTIZE_CHOICES",
    "SCHEMES",
    "WEIGHT_FORMAT",
    "QuantScheme",
    "dequantize_te",
    "dequantize_weight",
    "quantizable",
    "quantize_weight",
    "reference_weight",
    "scale_shape",
    "scheme",
]


def scheme(name: str) -> QuantScheme | None:
    """The scheme called ``name`` (None for ``none``); a clear error for anything else."""
    if name == "none":
        return None
    found = SCHEMES.get(name)
    if found is None:
        raise WsdCompileError(
            f"unknown quantization {name!r}; choose one of {', '.join(QUANTIZE_CHOICES)}"
        )
    return found


def dequantize_te(
    packed: te.Tensor,
    scales: te.Tensor,
    q: QuantScheme,
    *,
    pack_axis: int,
    shape: Sequence[int],
    dtype: str,
) -> te.Tensor:
    """The dequantized weight as a TE stage (named ``dequantize``) that the
    matmul schedules inline into their tile loads: the packed words are read
    and each element unpacked and scaled in registers."""
    scale_dims = [int(d) for d in scales.shape]
    mask = tirx.const((1 << q.bits) - 1, "uint32")

    def scale_index(i: Sequence[Any]) -> tuple[Any, ...]:
        index = []
        for axis, (full, have) in enumerate(zip(shape, scale_dims, strict=True)):
            if have == 1:
                index.append(0)
            elif have == full:
                index.append(i[axis])
            else:
                index.append(i[axis] // (int(full) // have))
        return tuple(index)

    def value(*i: Any) -> Any:
        word_index = list(i)
        word_index[pack_axis] = i[pack_axis] // q.per_word
        shift = ((i[pack_axis] % q.per_word) * q.bits).astype("uint32")
        raw = (packed[tuple(word_index)] >> shift) & mask
        level = raw.astype("int32") - q.zero
        return level.astype(dtype) * scales[scale_index(i)].astype(dtype)

    return te.compute(tuple(int(d) for d in shape), value, name="dequantize")
