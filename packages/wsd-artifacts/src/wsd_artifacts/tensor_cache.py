"""The tvmjs tensor-cache format: ``tensor-cache.json`` plus raw weight shards.

tvmjs (and wsd's own loader) read a JSON index whose ``records`` are shards;
each shard lists the tensors packed into it by name, shape, dtype, byte
offset and size. wsd writes tensors raw (no lossy encoding), names every
shard by its content hash so unchanged shards keep their names (and their
browser-cache entries) across builds, and records each shard's sha384 SRI.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError
from .integrity import sri_sha384_bytes

INDEX_NAME = "tensor-cache.json"
DEFAULT_SHARD_BYTES = 32 << 20

# Types WebGPU can hold; 64-bit types have no WGSL equivalent.
SUPPORTED_DTYPES = ("float32", "float16", "int32", "uint32", "int8", "uint8")


@dataclass(frozen=True)
class TensorRecord:
    """One tensor inside a shard."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    byte_offset: int


@dataclass(frozen=True)
class Shard:
    """One shard file: a run of tensors stored back to back."""

    data_path: str
    nbytes: int
    integrity: str
    records: tuple[TensorRecord, ...]


@dataclass(frozen=True)
class TensorCache:
    """The parsed index of a tensor-cache directory."""

    directory: Path
    shards: tuple[Shard, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> tuple[TensorRecord, ...]:
        """Every tensor record, in storage order."""
        return tuple(r for s in self.shards for r in s.records)

    @property
    def total_bytes(self) -> int:
        """Bytes of all shards together."""
        return sum(s.nbytes for s in self.shards)

    def files(self) -> tuple[str, ...]:
        """Paths of the index and every shard, relative to ``directory``."""
        return (INDEX_NAME, *(s.data_path for s in self.shards))


def _tensor_bytes(name: str, array: np.ndarray) -> tuple[str, bytes]:
    dtype = array.dtype.name
    if dtype not in SUPPORTED_DTYPES:
        raise ArtifactError(
            f"tensor {name!r} has dtype {dtype}, which WebGPU cannot hold; "
            f"cast it to one of {', '.join(SUPPORTED_DTYPES)} before writing"
        )
    return dtype, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def write_tensor_cache(
    directory: str | Path,
    tensors: Mapping[str, np.ndarray],
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    metadata: Mapping[str, Any] | None = None,
) -> TensorCache:
    """Write ``tensors`` (in their iteration order) as a tensor cache in ``directory``.

    Tensors are packed greedily into shards of at most ``shard_bytes``; a
    tensor larger than that gets a shard of its own. Returns the index written.
    """
    if shard_bytes <= 0:
        raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    shards: list[Shard] = []
    pending: list[tuple[str, tuple[int, ...], str, bytes]] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal pending_bytes
        if not pending:
            return
        data = b"".join(p[3] for p in pending)
        records, offset = [], 0
        for name, shape, dtype, raw in pending:
            records.append(TensorRecord(name, shape, dtype, len(raw), offset))
            offset += len(raw)
        data_path = f"shard-{hashlib.sha256(data).hexdigest()[:32]}.bin"
        (out / data_path).write_bytes(data)
        shards.append(Shard(data_path, len(data), sri_sha384_bytes(data), tuple(records)))
        pending.clear()
        pending_bytes = 0

    for name, array in tensors.items():
        dtype, raw = _tensor_bytes(name, np.asarray(array))
        if pending and pending_bytes + len(raw) > shard_bytes:
            flush()
        pending.append((name, tuple(int(d) for d in np.shape(array)), dtype, raw))
        pending_bytes += len(raw)
    flush()

    cache = TensorCache(out, tuple(shards), dict(metadata or {}))
    (out / INDEX_NAME).write_text(json.dumps(_to_json(cache), indent=1) + "\n")
    return cache


def _to_json(cache: TensorCache) -> dict[str, Any]:
    return {
        "metadata": dict(cache.metadata),
        "records": [
            {
                "dataPath": s.data_path,
                "format": "raw-shard",
                "nbytes": s.nbytes,
                "integrity": s.integrity,
                "records": [
                    {
                        "name": r.name,
                        "shape": list(r.shape),
                        "dtype": r.dtype,
                        "format": "raw",
                        "nbytes": r.nbytes,
                        "byteOffset": r.byte_offset,
                    }
                    for r in s.records
                ],
            }
            for s in cache.shards
        ],
    }


def load_tensor_cache_index(directory: str | Path) -> TensorCache:
    """Parse and validate ``tensor-cache.json`` in ``directory`` (shards are not read)."""
    root = Path(directory)
    index = root / INDEX_NAME
    try:
        doc = json.loads(index.read_text())
    except FileNotFoundError:
        raise ArtifactError(
            f"{index} does not exist: is {root} a tensor-cache directory?"
        ) from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{index} is not valid JSON ({e}); rebuild the weights") from None
    try:
        shards = tuple(_shard_from_json(s) for s in doc["records"])
        metadata = dict(doc.get("metadata", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(
            f"{index} is not a tensor-cache index ({e!r}); rebuild the weights"
        ) from None
    return TensorCache(root, shards, metadata)


def _shard_from_json(s: Mapping[str, Any]) -> Shard:
    records = []
    for r in s["records"]:
        if r.get("format", "raw") != "raw":
            raise ValueError(
                f"tensor {r['name']!r} uses encoding {r['format']!r}; only raw is read"
            )
        shape = tuple(int(d) for d in r["shape"])
        if r["dtype"] not in SUPPORTED_DTYPES:
            raise ValueError(f"tensor {r['name']!r} has unsupported dtype {r['dtype']!r}")
        expected = math.prod(shape) * np.dtype(r["dtype"]).itemsize
        if int(r["nbytes"]) != expected:
            raise ValueError(
                f"tensor {r['name']!r}: nbytes {r['nbytes']} != {expected} for its shape"
            )
        records.append(
            TensorRecord(str(r["name"]), shape, str(r["dtype"]), expected, int(r["byteOffset"]))
        )
    return Shard(str(s["dataPath"]), int(s["nbytes"]), str(s.get("integrity", "")), tuple(records))


def read_tensor_cache(directory: str | Path) -> dict[str, np.ndarray]:
    """Read every tensor of the cache in ``directory`` into numpy arrays."""
    cache = load_tensor_cache_index(directory)
    out: dict[str, np.ndarray] = {}
    for shard in cache.shards:
        path = cache.directory / shard.data_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactError(
                f"shard {path} is missing; rebuild or re-download the weights"
            ) from None
        if len(data) != shard.nbytes:
            raise ArtifactError(
                f"shard {path} has {len(data)} bytes, its record says {shard.nbytes}; the file is "
                "truncated or from another build"
            )
        for r in shard.records:
            if r.byte_offset + r.nbytes > len(data):
                raise ArtifactError(f"tensor {r.name!r} lies beyond the end of shard {path}")
            raw = data[r.byte_offset : r.byte_offset + r.nbytes]
            out[r.name] = (
                np.frombuffer(raw, dtype=np.dtype(r.dtype).newbyteorder("<"))
                .reshape(r.shape)
                .copy()
            )
    return out
