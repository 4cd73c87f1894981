"""The tensor-cache writer and reader."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from wsd_artifacts import (
    INDEX_NAME,
    ArtifactError,
    load_tensor_cache_index,
    read_tensor_cache,
    sri_sha384_file,
    write_tensor_cache,
)


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "a.weight": rng.standard_normal((3, 5)).astype("float32"),
        "b.half": rng.standard_normal((7,)).astype("float16"),
        "c.ids": np.arange(-4, 8, dtype="int32").reshape(3, 4),
        "d.bytes": np.arange(9, dtype="uint8"),
    }


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path: Path) -> None:
    tensors = _tensors()
    write_tensor_cache(tmp_path, tensors)
    back = read_tensor_cache(tmp_path)
    assert list(back) == list(tensors)
    for name, array in tensors.items():
        assert back[name].dtype == array.dtype
        np.testing.assert_array_equal(back[name], array)


def test_index_is_tvmjs_shaped_and_raw(tmp_path: Path) -> None:
    write_tensor_cache(tmp_path, _tensors(), metadata={"kind": "test"})
    doc = json.loads((tmp_path / INDEX_NAME).read_text())
    assert doc["metadata"] == {"kind": "test"}
    shard = doc["records"][0]
    assert shard["format"] == "raw-shard"
    assert {r["format"] for r in shard["records"]} == {"raw"}
    first = shard["records"][0]
    assert first == {
        "name": "a.weight",
        "shape": [3, 5],
        "dtype": "float32",
        "format": "raw",
        "nbytes": 60,
        "byteOffset": 0,
    }


def test_shards_split_at_the_cap_and_are_named_by_content(tmp_path: Path) -> None:
    tensors = {f"t{i}": np.full((16,), i, dtype="float32") for i in range(5)}
    cache = write_tensor_cache(tmp_path / "x", tensors, shard_bytes=128)
    assert [len(s.records) for s in cache.shards] == [2, 2, 1]
    again = write_tensor_cache(tmp_path / "y", tensors, shard_bytes=128)
    assert [s.data_path for s in cache.shards] == [s.data_path for s in again.shards]
    for shard in cache.shards:
        data = (tmp_path / "x" / shard.data_path).read_bytes()
        assert shard.data_path == f"shard-{hashlib.sha256(data).hexdigest()[:32]}.bin"
        assert (
            shard.integrity == "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
        )
        assert sri_sha384_file(tmp_path / "x" / shard.data_path) == shard.integrity
    assert cache.total_bytes == 5 * 64
    assert cache.files()[0] == INDEX_NAME


def test_a_tensor_larger_than_the_cap_gets_its_own_shard(tmp_path: Path) -> None:
    tensors = {"small": np.zeros(2, "float32"), "big": np.zeros(100, "float32")}
    cache = write_tensor_cache(tmp_path, tensors, shard_bytes=64)
    assert [[r.name for r in s.records] for s in cache.shards] == [["small"], ["big"]]
    np.testing.assert_array_equal(read_tensor_cache(tmp_path)["big"], tensors["big"])


def test_64_bit_dtypes_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"float64.*cast it to one of float32"):
        write_tensor_cache(tmp_path, {"x": np.zeros(2)})


def test_a_non_positive_shard_cap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shard_bytes"):
        write_tensor_cache(tmp_path, {}, shard_bytes=0)


def test_missing_index_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"tensor-cache\.json does not exist"):
        load_tensor_cache_index(tmp_path)


def test_malformed_index_is_reported(tmp_path: Path) -> None:
    (tmp_path / INDEX_NAME).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_tensor_cache_index(tmp_path)
    (tmp_path / INDEX_NAME).write_text(json.dumps({"records": [{"dataPath": "x"}]}))
    with pytest.raises(ArtifactError, match="not a tensor-cache index"):
        load_tensor_cache_index(tmp_path)


def test_lossy_encodings_and_inconsistent_sizes_are_refused(tmp_path: Path) -> None:
    write_tensor_cache(tmp_path, {"w": np.zeros((2, 2), "float32")})
    doc = json.loads((tmp_path / INDEX_NAME).read_text())
    doc["records"][0]["records"][0]["format"] = "f32-to-bf16"
    (tmp_path / INDEX_NAME).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="encoding 'f32-to-bf16'"):
        load_tensor_cache_index(tmp_path)
    doc["records"][0]["records"][0].update(format="raw", nbytes=4)
    (tmp_path / INDEX_NAME).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="nbytes 4 != 16"):
        load_tensor_cache_index(tmp_path)


def test_truncated_or_missing_shards_are_named(tmp_path: Path) -> None:
    cache = write_tensor_cache(tmp_path, {"w": np.zeros((8,), "float32")})
    shard = tmp_path / cache.shards[0].data_path
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(ArtifactError, match="truncated or from another build"):
        read_tensor_cache(tmp_path)
    shard.unlink()
    with pytest.raises(ArtifactError, match="is missing"):
        read_tensor_cache(tmp_path)
