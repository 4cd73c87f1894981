"""wsd-artifacts: tensor-cache weight shards, the model manifest, sha384 integrity, verify,
and the atomic writes of files and directories every layer uses."""

from .atomic import atomic_directory, check_new_directory, write_bytes_atomic, write_text_atomic
from .errors import ArtifactError, ManifestError
from .integrity import sri_sha384_bytes, sri_sha384_file
from .library import (
    BUILD_SECTION,
    build_stamp_problems,
    compute_build_id,
    library_code_integrity,
    read_build_info,
    stamp_build,
    stamp_library,
    strip_build_info,
)
from .manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MANIFEST_VERSION,
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
    "BUILD_SECTION",
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
    "atomic_directory",
    "build_stamp_problems",
    "check_new_directory",
    "compute_build_id",
    "library_code_integrity",
    "list_files",
    "load_manifest",
    "load_tensor_cache_index",
    "manifest_schema",
    "read_build_info",
    "read_tensor_cache",
    "sri_sha384_bytes",
    "sri_sha384_file",
    "stamp_build",
    "stamp_library",
    "strip_build_info",
    "validate_manifest",
    "verify",
    "write_bytes_atomic",
    "write_manifest",
    "write_tensor_cache",
    "write_text_atomic",
]
