"""The schema document and the validator it drives agree."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from wsd_artifacts import (
    SUPPORTED_DTYPES,
    ManifestError,
    manifest_schema,
    validate_manifest,
    write_manifest,
)
from wsd_artifacts._schema_messages import check_keywords, validate


def test_the_schema_ships_as_package_data_and_is_draft_2020_12() -> None:
    text = resources.files("wsd_artifacts").joinpath("manifest.schema.json").read_text()
    doc = json.loads(text)
    assert doc == manifest_schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["properties"]["version"] == {"const": 3}


def test_the_schema_uses_only_keywords_the_validator_implements() -> None:
    check_keywords(manifest_schema())


def test_every_top_level_field_is_required_and_closed() -> None:
    doc = manifest_schema()
    # tokenizer_2 and conditioning are SDXL's (required for kind sdxl by a cross-field rule);
    # limits, kernel_paths and vae_tiling are optional (older builds lack them); lora is
    # absent where a build takes no LoRA (quantized weights).
    assert set(doc["required"]) == set(doc["properties"]) - {
        "tokenizer_2",
        "conditioning",
        "limits",
        "kernel_paths",
        "vae_tiling",
        "lora",
    }
    assert doc["additionalProperties"] is False


def test_dtypes_are_those_of_the_tensor_cache() -> None:
    assert manifest_schema()["$defs"]["dtype"]["enum"] == list(SUPPORTED_DTYPES)
    assert {"uint32", "int32", "float16", "float32"} <= set(SUPPORTED_DTYPES)


def test_manifest_schema_returns_a_copy() -> None:
    manifest_schema()["properties"].clear()
    assert manifest_schema()["properties"]


def test_the_validator_is_driven_by_the_document(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest["kind"] = "sd3"
    schema = manifest_schema()
    assert [str(v) for v in validate(manifest, schema)] == [
        'kind: expected one of "sd15", "sdxl", got "sd3"'
    ]
    schema["properties"]["kind"]["enum"].append("sd3")
    assert validate(manifest, schema) == []


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("model.wasm", True),
        ("weights/shard-0.bin", True),
        (".well-known/x", True),
        ("a..b", True),
        ("../model.wasm", False),
        ("a/../b", False),
        ("./model.wasm", False),
        ("a/.", False),
        ("/etc/passwd", False),
        ("a//b", False),
        ("a/", False),
        ("with space", False),
        ("back\\slash", False),
        ("", False),
    ],
)
def test_relative_paths(path: str, valid: bool) -> None:
    schema = manifest_schema()
    pattern = schema["$defs"]["relative_path"]["pattern"]
    assert bool(re.search(pattern, path)) is valid
    assert (validate(path, {**schema, **schema["$defs"]["relative_path"]}) == []) is valid


# Each keyword the validator implements: (schema, instance, expected messages).
KEYWORD_CASES: list[tuple[dict[str, Any], Any, list[str]]] = [
    ({"type": "integer"}, 3, []),
    ({"type": "integer"}, 3.0, []),
    ({"type": "integer"}, 3.5, ["expected an integer, got 3.5"]),
    ({"type": "integer"}, False, ["expected an integer, got false"]),
    ({"type": "number"}, 2, []),
    ({"type": "number"}, "2", ['expected a number, got "2"']),
    ({"type": "boolean"}, 1, ["expected true or false, got 1"]),
    ({"type": ["string", "null"]}, None, []),
    ({"type": "object"}, {}, []),
    ({"type": "string"}, {"a": 1}, ["expected a string, got an object"]),
    ({"const": 1}, 1.0, []),
    ({"const": 1}, True, ["expected 1, got true"]),
    ({"enum": [[1, 2], {"a": None}]}, {"a": None}, []),
    ({"enum": [[1, 2]]}, [1, 3], ["expected one of [1, 2], got an array"]),
    ({"minimum": 2}, 2, []),
    ({"minimum": 2}, "not a number", []),
    ({"exclusiveMinimum": 2}, 2, ["expected a value > 2, got 2"]),
    ({"minLength": 2}, "ab", []),
    ({"minLength": 2}, "a", ['expected at least 2 characters, got "a"']),
    ({"pattern": "^a"}, "ba", ['expected a string matching ^a, got "ba"']),
    ({"items": {"type": "integer"}, "minItems": 2}, [1], ["expected at least 2 items, got 1"]),
    ({"items": {"type": "integer"}}, [1, "x"], ['[1]: expected an integer, got "x"']),
    ({"uniqueItems": True}, [1, 1.0], ["[1]: expected unique items, 1.0 repeats"]),
    ({"required": ["a"]}, {"b": 1}, ["a: required field is missing"]),
    ({"minProperties": 2}, {"b": 1}, ["expected at least 2 entries, got 1"]),
    ({"properties": {"a": True}, "additionalProperties": False}, {"a": 1}, []),
    (
        {"properties": {"a": True}, "additionalProperties": False},
        {"b": 1},
        ["b: unexpected field (expected only: a)"],
    ),
    ({"additionalProperties": {"type": "null"}}, {"x y": 1}, ['["x y"]: expected null, got 1']),
    ({"properties": {"a": False}}, {"a": 1}, ["a: unexpected field"]),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"A": 1}, ["A: invalid name: expected"]),
    ({"$defs": {"n": {"type": "null"}}, "$ref": "#/$defs/n"}, 0, ["expected null, got 0"]),
    ({"type": "number"}, float("inf"), ["expected a finite number"]),
    ({"type": "array"}, {1, 2}, ['expected an array, got "{1, 2}"']),
]


@pytest.mark.parametrize(("schema", "instance", "expected"), KEYWORD_CASES)
def test_each_keyword_is_implemented(
    schema: dict[str, Any], instance: Any, expected: list[str]
) -> None:
    found = [str(v) for v in validate(instance, schema)]
    assert len(found) == len(expected), found
    for message, want in zip(found, expected, strict=True):
        assert want in message


@pytest.mark.parametrize(
    ("schema", "error"),
    [
        ({"oneOf": [{"type": "string"}]}, r"unsupported JSON Schema keywords \['oneOf'\]"),
        ({"items": {"format": "uri"}}, r"#/items: unsupported .*'format'"),
        ({"$ref": "https://example.com/s.json"}, "only local"),
        ({"properties": {"a": 3}}, "#/properties/a: a schema must be an object or a boolean"),
    ],
)
def test_unsupported_schemas_are_refused(schema: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        check_keywords(schema)


SDXL_CONDITIONING = {
    "force_zeros_for_empty_prompt": True,
    "pooled_token": "argmax",
    "pooled_dim": 1280,
    "time_ids_dim": 6,
    "vae_force_upcast": True,
}


def test_a_valid_sdxl_manifest_passes(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest.update(kind="sdxl", image={"height": 1024, "width": 1024})
    manifest["latent"].update(shape=[1, 4, 128, 128], scaling_factor=0.13025)
    manifest.update(
        tokenizer_2={**manifest["tokenizer"], "pad_token_id": 0},
        conditioning=SDXL_CONDITIONING,
    )
    assert validate_manifest(manifest)["kind"] == "sdxl"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda m: m.pop("conditioning"), "conditioning: required for kind sdxl"),
        (lambda m: m.pop("tokenizer_2"), "tokenizer_2: required for kind sdxl"),
        (
            lambda m: m["tokenizer_2"].update(file="tokenizer_2.json"),
            "tokenizer_2.file: expected a file listed in files",
        ),
        (
            lambda m: m["conditioning"].update(pooled_token="cls"),
            'conditioning.pooled_token: expected one of "argmax", "eos"',
        ),
        (
            lambda m: m["conditioning"].update(time_ids_dim=5),
            "conditioning.time_ids_dim",
        ),
    ],
)
def test_sdxl_fields_are_checked(
    model_dir: Path, body: dict[str, Any], change: Any, error: str
) -> None:
    manifest = write_manifest(model_dir, body)
    manifest.update(kind="sdxl", image={"height": 1024, "width": 1024})
    manifest["latent"].update(shape=[1, 4, 128, 128])
    manifest.update(tokenizer_2={**manifest["tokenizer"]}, conditioning=dict(SDXL_CONDITIONING))
    change(manifest)
    with pytest.raises(ManifestError) as raised:
        validate_manifest(manifest)
    assert error in str(raised.value)
