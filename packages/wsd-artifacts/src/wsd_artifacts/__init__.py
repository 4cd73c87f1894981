"""wsd-artifacts: tensor-cache weight shards, the model manifest, sha384 integrity, verify."""

from .errors import ArtifactError, ManifestError
from .integrity import sri_sha384_bytes, sri_sha384_file
from .manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MANIFEST_VERSION,
    compute_build_id,
    list_files,
    load_manifest,
    manifest_schema,
    validate_manifest,
    write_manifest,
)
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
from .verification import VerifyReport, verify

__all__ = [
    "DEFAULT_SHARD_BYTES",
    "INDEX_NAME",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MANIFEST_VERSION",
    "SUPPORTED_DTYPES",
    "ArtifactError",
    "ManifestError",
    "Shard",
    "TensorCache",
    "TensorRecord",
    "VerifyReport",
    "compute_build_id",
    "list_files",
    "load_manifest",
    "load_tensor_cache_index",
    "manifest_schema",
    "read_tensor_cache",
    "sri_sha384_bytes",
    "sri_sha384_file",
    "validate_manifest",
    "verify",
    "write_manifest",
    "write_tensor_cache",
]
