"""wsd-artifacts: tensor-cache weight shards and sha384 integrity for wsd builds."""

from .errors import ArtifactError
from .integrity import sri_sha384_bytes, sri_sha384_file
from .tensor_cache import (
    DEFAULT_SHARD_BYTES,
    INDEX_NAME,
    SUPPORTED_DTYPES,
    Shard,
    TensorCache,
    TensorRecord,
    load_tensor_cache_index,
    read_tensor_cache,
    write_tensor_cache,
)

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "INDEX_NAME",
    "SUPPORTED_DTYPES",
    "ArtifactError",
    "Shard",
    "TensorCache",
    "TensorRecord",
    "load_tensor_cache_index",
    "read_tensor_cache",
    "sri_sha384_bytes",
    "sri_sha384_file",
    "write_tensor_cache",
]
