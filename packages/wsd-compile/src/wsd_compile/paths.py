"""Kernel paths: the libraries one build holds, one per kind of WebGPU adapter.

A build's weights are one set of shards; its kernels come in paths, best
first, each a library of the same functions that needs some WebGPU features
of the device. The page runs the first path the device can (its features,
its buffer limits), so an fp16 build also runs where ``shader-f16`` is missing:

- ``subgroup-matrix`` (when asked for): the fp16 kernels with the matmuls on
  tensor cores (:mod:`wsd_compile.kernels.subgroup_matrix`), for devices with
  Dawn's ``chromium-experimental-subgroup-matrix``;
- ``shader-f16``: the fp16 build's own kernels (half-precision storage and
  arithmetic, fp32 sums);
- ``fp32``: every kernel in float32; in an fp16 build its library is the fp16
  module widened (:func:`wsd_compile.widen.widen_to_fp32`) and reads the same
  shards, each float16 weight widened to float32 as the page uploads it.

The manifest lists them (``kernel_paths``) with what each requires and the
largest buffer it binds, and the GPU memory it needs (``memory``: each
component's weights as uploaded, each function's planned storage for its
intermediates), from which the page reckons the memory of each mode. In a
build whose VAE decodes in tiles (``vae_decode_tile``) that is the largest
without the untiled decoder, and ``vae_decode_buffer_bytes`` is the untiled
decoder's own: a device that cannot bind it runs the path and decodes in tiles.
Likewise the encoder (``vae_encode_tile``, ``vae_encode_buffer_bytes``): a
device that cannot bind the untiled encoder's buffers encodes in tiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .kernels.subgroup_matrix import SUBGROUP_MATRIX_REQUIRES, WORKGROUP_TILES_REQUIRE

LIBRARY_FILE = "model.wasm"
FP32_LIBRARY_FILE = "model-fp32.wasm"
SUBGROUP_MATRIX_LIBRARY_FILE = "model-subgroup-matrix.wasm"


@dataclass(frozen=True)
class KernelPath:
    """One library of a build and what a device needs to run it."""

    name: str
    library: str
    precision: str
    requires: tuple[str, ...]
    widen_f16_weights: bool
    max_buffer_bytes: int = 0
    #: Built with the tensor-core matmuls (:mod:`wsd_compile.kernels.subgroup_matrix`).
    subgroup_matrix: bool = False
    #: The untiled ``vae_decode``'s largest buffer, where the build can decode in tiles.
    vae_decode_buffer_bytes: int | None = None
    #: The untiled ``vae_encode``'s largest buffer, where the build can encode in tiles.
    vae_encode_buffer_bytes: int | None = None
    #: GPU bytes of each component's weights as this path uploads them.
    weight_bytes: Mapping[str, int] = field(default_factory=dict)
    #: Bytes each function allocates for its intermediates (its planned storage).
    workspace_bytes: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "library": self.library,
            "precision": self.precision,
            "requires": list(self.requires),
            "widen_f16_weights": self.widen_f16_weights,
            "max_buffer_bytes": self.max_buffer_bytes,
        }
        if self.vae_decode_buffer_bytes is not None:
            out["vae_decode_buffer_bytes"] = self.vae_decode_buffer_bytes
        if self.vae_encode_buffer_bytes is not None:
            out["vae_encode_buffer_bytes"] = self.vae_encode_buffer_bytes
        if self.weight_bytes or self.workspace_bytes:
            out["memory"] = {
                "weights": dict(sorted(self.weight_bytes.items())),
                "workspace": dict(sorted(self.workspace_bytes.items())),
            }
        return out


def planned_paths(
    precision: str,
    *,
    fp32_fallback: bool = True,
    subgroup_matrix: bool = False,
    workgroup_tiles: bool = False,
) -> list[KernelPath]:
    """The paths a build of ``precision`` holds, best first (buffer sizes not yet known).

    An fp32 build has one path; an fp16 build has ``shader-f16`` and, unless
    ``fp32_fallback`` is false, the ``fp32`` path after it, and with
    ``subgroup_matrix`` the ``subgroup-matrix`` path (tensor cores) before it,
    which with ``workgroup_tiles`` (:mod:`.kernels.subgroup_tiles`) also
    requires 32 KiB of workgroup memory (``WORKGROUP_TILES_REQUIRE``).
    """
    if precision != "fp16":
        return [KernelPath("fp32", LIBRARY_FILE, "fp32", (), widen_f16_weights=False)]
    paths = []
    if subgroup_matrix:
        paths.append(
            KernelPath(
                "subgroup-matrix",
                SUBGROUP_MATRIX_LIBRARY_FILE,
                "fp16",
                SUBGROUP_MATRIX_REQUIRES + (WORKGROUP_TILES_REQUIRE if workgroup_tiles else ()),
                False,
                subgroup_matrix=True,
            )
        )
    paths.append(KernelPath("shader-f16", LIBRARY_FILE, "fp16", ("shader-f16",), False))
    if fp32_fallback:
        paths.append(KernelPath("fp32", FP32_LIBRARY_FILE, "fp32", (), widen_f16_weights=True))
    return paths
