"""Writing, loading and validating the model manifest."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wsd_artifacts import (
    INDEX_NAME,
    MANIFEST_NAME,
    MANIFEST_VERSION,
    ArtifactError,
    ManifestError,
    compute_build_id,
    load_manifest,
    load_tensor_cache_index,
    read_build_info,
    sri_sha384_bytes,
    sri_sha384_file,
    stamp_build,
    strip_build_info,
    validate_manifest,
    write_manifest,
)

# --- round trip -------------------------------------------------------------


def test_round_trip_write_then_load(model_dir: Path, body: dict[str, Any]) -> None:
    written = write_manifest(model_dir, body)
    assert load_manifest(model_dir) == written
    assert json.loads((model_dir / MANIFEST_NAME).read_text()) == written


def test_the_writer_fills_schema_version_files_and_build_id(
    model_dir: Path, body: dict[str, Any]
) -> None:
    m = write_manifest(model_dir, body)
    assert (m["schema"], m["version"]) == ("wsd-manifest", MANIFEST_VERSION)
    shards = [s.data_path for s in load_tensor_cache_index(model_dir).shards]
    assert sorted(m["files"]) == sorted(["model.wasm", INDEX_NAME, "tokenizer.json", *shards])
    for rel, record in m["files"].items():
        path = model_dir / rel
        assert record == {"bytes": path.stat().st_size, "integrity": sri_sha384_file(path)}
    library = (model_dir / "model.wasm").read_bytes()
    assert m["build_id"] == compute_build_id(
        sri_sha384_bytes(strip_build_info(library)), m["files"][INDEX_NAME]["integrity"]
    )
    assert read_build_info(library) == {
        "build_id": m["build_id"],
        "runtime": body["runtime"],
        "quantize": "none",
    }
    assert re.fullmatch(r"[0-9a-f]{16}", m["build_id"])
    assert {k: v for k, v in m.items() if k in body} == body


def test_fields_are_written_in_schema_order(model_dir: Path, body: dict[str, Any]) -> None:
    reordered = dict(reversed(list(body.items())))
    m = write_manifest(model_dir, reordered)
    assert list(m)[:4] == ["schema", "version", "kind", "build_id"]
    assert list(m)[-1] == "files"


def test_computed_fields_given_in_the_body_are_replaced(
    model_dir: Path, body: dict[str, Any]
) -> None:
    expected = write_manifest(model_dir, body)
    stale = {**body, "schema": "x", "version": 9, "build_id": "0" * 16, "files": {"a": 1}}
    assert write_manifest(model_dir, stale) == expected


def test_rewriting_does_not_list_the_manifest_or_leave_temporary_files(
    model_dir: Path, body: dict[str, Any]
) -> None:
    first = write_manifest(model_dir, body)
    second = write_manifest(model_dir, body)
    assert first == second
    assert MANIFEST_NAME not in second["files"]
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([MANIFEST_NAME, *first["files"]])


def test_a_failed_write_keeps_the_old_manifest_and_no_temporary_file(
    model_dir: Path, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifest(model_dir, body)
    before = (model_dir / MANIFEST_NAME).read_bytes()

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    (model_dir / "model.wasm").write_bytes(
        (model_dir / "model.wasm").read_bytes() + b"\x00\x02\x01x"
    )
    stamp_build(model_dir, body)
    monkeypatch.setattr("wsd_artifacts.atomic.os.fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        write_manifest(model_dir, body)
    assert (model_dir / MANIFEST_NAME).read_bytes() == before
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]


def test_files_in_subdirectories_are_listed_by_posix_path(
    model_dir: Path, body: dict[str, Any]
) -> None:
    (model_dir / "extras" / "deep").mkdir(parents=True)
    (model_dir / "extras" / "deep" / "notes.txt").write_text("hi")
    (model_dir / "tokenizer.json").rename(model_dir / "extras" / "tokenizer.json")
    body["tokenizer"]["file"] = "extras/tokenizer.json"
    m = write_manifest(model_dir, body)
    assert {"extras/deep/notes.txt", "extras/tokenizer.json"} <= set(m["files"])
    assert load_manifest(model_dir)["tokenizer"]["file"] == "extras/tokenizer.json"


def test_build_id_follows_the_library_and_weights_only(
    model_dir: Path, body: dict[str, Any]
) -> None:
    first = write_manifest(model_dir, body)["build_id"]
    (model_dir / "tokenizer.json").write_text("{}")
    assert write_manifest(model_dir, body)["build_id"] == first
    assert stamp_build(model_dir, body) == first  # stamping keeps the id
    assert write_manifest(model_dir, body)["build_id"] == first
    (model_dir / "model.wasm").write_bytes(
        (model_dir / "model.wasm").read_bytes() + b"\x00\x02\x01x"
    )
    stamp_build(model_dir, body)
    assert write_manifest(model_dir, body)["build_id"] != first


# --- the build stamp ------------------------------------------------------------


def test_stamp_build_stamps_the_library_with_the_id_write_manifest_computes(
    model_dir: Path, body: dict[str, Any]
) -> None:
    build_id = stamp_build(model_dir, body)
    library = (model_dir / "model.wasm").read_bytes()
    assert read_build_info(library) == {
        "build_id": build_id,
        "runtime": body["runtime"],
        "quantize": "none",
    }
    assert write_manifest(model_dir, body)["build_id"] == build_id
    assert (model_dir / "model.wasm").read_bytes() == library  # write_manifest only reads it


def test_an_unstamped_library_is_refused_with_the_fix(
    model_dir: Path, body: dict[str, Any]
) -> None:
    library = model_dir / "model.wasm"
    library.write_bytes(strip_build_info(library.read_bytes()))
    with pytest.raises(ManifestError) as e:
        write_manifest(model_dir, body)
    (problem,) = e.value.problems
    assert problem.startswith("library: model.wasm is not stamped with build ")
    assert problem.endswith(
        "stamp it with wsd_artifacts.stamp_build(model_dir, manifest_body) first"
    )
    assert read_build_info(library.read_bytes()) is None
    assert not (model_dir / MANIFEST_NAME).exists()


def test_a_stamp_of_another_build_or_runtime_is_refused(
    model_dir: Path, body: dict[str, Any]
) -> None:
    body["runtime"] = {"tvm": "0.28.0"}
    with pytest.raises(ManifestError, match=r"model\.wasm is not stamped with build"):
        write_manifest(model_dir, body)
    stamp_build(model_dir, body)
    (model_dir / "model.wasm").write_bytes(
        (model_dir / "model.wasm").read_bytes() + b"\x00\x02\x01x"
    )
    with pytest.raises(ManifestError, match=r"model\.wasm is not stamped with build"):
        write_manifest(model_dir, body)


def test_a_library_that_is_not_webassembly_needs_no_stamp(
    model_dir: Path, body: dict[str, Any]
) -> None:
    (model_dir / "model.wasm").write_text("not wasm")
    assert write_manifest(model_dir, body)["files"]["model.wasm"]["bytes"] == 8
    with pytest.raises(ArtifactError, match="not a WebAssembly module"):
        stamp_build(model_dir, body)


def test_stamp_build_names_missing_files(tmp_path: Path, body: dict[str, Any]) -> None:
    with pytest.raises(ManifestError) as e:
        stamp_build(tmp_path, body)
    assert e.value.problems == (
        f"library: 'model.wasm' names no file in {tmp_path}",
        f"weights: 'tensor-cache.json' names no file in {tmp_path}",
    )


# --- what write_manifest refuses ---------------------------------------------


def test_referenced_files_must_exist(model_dir: Path, body: dict[str, Any]) -> None:
    (model_dir / "model.wasm").unlink()
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ManifestError) as e:
        write_manifest(model_dir, body)
    assert e.value.problems == (
        f"library: 'model.wasm' names no file in {model_dir}",
        f"tokenizer.file: 'tokenizer.json' names no file in {model_dir}",
    )
    assert not (model_dir / MANIFEST_NAME).exists()


def test_param_names_must_be_tensors_of_the_index(model_dir: Path, body: dict[str, Any]) -> None:
    body["components"]["unet"]["param_names"][1] = "unet.not_there"
    with pytest.raises(
        ManifestError,
        match=r"components\.unet\.param_names: expected names of "
        r"tensors in tensor-cache\.json, not found: 'unet\.not_there'",
    ):
        write_manifest(model_dir, body)
    assert not (model_dir / MANIFEST_NAME).exists()


def test_many_absent_param_names_are_summarised(model_dir: Path, body: dict[str, Any]) -> None:
    names = [f"ghost.{i}" for i in range(8)]
    body["components"]["text_encoder"] = {"param_names": names, "param_count": 8, "param_bytes": 0}
    with pytest.raises(ManifestError, match=r"'ghost\.4' and 3 more"):
        write_manifest(model_dir, body)


def test_param_count_must_match_param_names(model_dir: Path, body: dict[str, Any]) -> None:
    body["components"]["unet"]["param_count"] = 4
    with pytest.raises(
        ManifestError,
        match=r"components\.unet\.param_count: expected 3 \(the length of param_names\), got 4",
    ):
        write_manifest(model_dir, body)


def test_param_bytes_must_match_the_index(model_dir: Path, body: dict[str, Any]) -> None:
    body["components"]["text_encoder"]["param_bytes"] = 1
    with pytest.raises(
        ManifestError, match=r"components\.text_encoder\.param_bytes: expected 768 .*got 1"
    ):
        write_manifest(model_dir, body)


def test_every_shard_of_the_index_must_be_present(model_dir: Path, body: dict[str, Any]) -> None:
    shard = load_tensor_cache_index(model_dir).shards[0].data_path
    (model_dir / shard).unlink()
    with pytest.raises(ManifestError, match=f"lists shard '{shard}', which is not in"):
        write_manifest(model_dir, body)


def test_an_unreadable_index_is_an_artifact_error(model_dir: Path, body: dict[str, Any]) -> None:
    (model_dir / INDEX_NAME).write_text("{}")
    with pytest.raises(ArtifactError, match="not a tensor-cache index"):
        write_manifest(model_dir, body)


def test_the_directory_must_exist(tmp_path: Path, body: dict[str, Any]) -> None:
    with pytest.raises(ManifestError, match="is not a directory"):
        write_manifest(tmp_path / "nowhere", body)


def test_an_invalid_body_is_refused_before_writing(model_dir: Path, body: dict[str, Any]) -> None:
    del body["kind"]
    body["surprise"] = 1
    with pytest.raises(ManifestError) as e:
        write_manifest(model_dir, body)
    assert e.value.problems[0] == "kind: required field is missing"
    assert e.value.problems[1].startswith("surprise: unexpected field (expected only: schema,")
    assert not (model_dir / MANIFEST_NAME).exists()


# --- validation names the field ----------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = m
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = m
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _rename_file(old: str, new: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        m["files"][new] = m["files"].pop(old)

    return mutate


INVALID: list[tuple[Mutation, str]] = [
    (_set("kind", "sd21"), 'kind: expected one of "sd15", "sdxl", got "sd21"'),
    (_set("model/precision", "int4"), 'model.precision: expected one of "fp32", "fp16"'),
    (_set("image/height", "64"), 'image.height: expected an integer, got "64"'),
    (_set("image/width", True), "image.width: expected an integer, got true"),
    (_set("image/width", 0), "image.width: expected a value >= 1, got 0"),
    (_delete("tokenizer/max_length"), "tokenizer.max_length: required field is missing"),
    (_set("latent/scaling_factor", 0), "latent.scaling_factor: expected a value > 0, got 0"),
    (_set("latent/shape", []), "latent.shape: expected at least 1 item, got 0"),
    (_set("latent/shape/0", -1), "latent.shape[0]: expected a value >= 0, got -1"),
    (
        _set("functions/unet/inputs/1/dtype", "float64"),
        'functions.unet.inputs[1].dtype: expected one of "float32", "float16"',
    ),
    (
        _set("functions/unet/outputs/0/shape", None),
        "functions.unet.outputs[0].shape: expected an array, got null",
    ),
    (
        _set("functions/unet/params", 3),
        "functions.unet.params: expected a string or null, got 3",
    ),
    (_set("functions", {}), "functions: expected at least 1 entry, got 0"),
    (
        _set("components/unet/param_names/1", "unet.conv_in.weight"),
        'components.unet.param_names[1]: expected unique items, "unet.conv_in.weight" repeats',
    ),
    (
        _set("files/model.wasm/integrity", "md5-abc"),
        'files["model.wasm"].integrity: expected a sha384 Subresource-Integrity string',
    ),
    (_set("files/model.wasm/extra", 1), 'files["model.wasm"].extra: unexpected field'),
    (
        _rename_file("tokenizer.json", "../tokenizer.json"),
        'files["../tokenizer.json"]: invalid name: expected a relative path',
    ),
    (_set("schema", "other"), "not a wsd manifest: schema is 'other', expected 'wsd-manifest'"),
    (_set("version", 0), "version: expected 3, got 0"),
    (_set("build_id", "XYZ"), "build_id: expected 16 lowercase hex digits"),
    (_set("scheduler/config", []), "scheduler.config: expected an object, got an array"),
    (_set("latent/scaling_factor", float("nan")), "latent.scaling_factor: expected a finite"),
    # Rules beyond the schema document.
    (
        _set("functions/unet/params", "vae"),
        "functions.unet.params: expected null or the name of a component "
        "('text_encoder', 'unet'), got 'vae'",
    ),
    (
        _set("components/unet/param_count", 2),
        "components.unet.param_count: expected 3 (the length of param_names), got 2",
    ),
    (
        _set("latent/shape", [1, 4, 8, 4]),
        "latent.shape: expected the last two dimensions to be image height and width divided "
        "by vae_scale_factor (8 x 8), got [1, 4, 8, 4]",
    ),
    (
        _set("tasks/text-to-image/1", "vae_decode"),
        'tasks["text-to-image"]: lists functions the library lacks: vae_decode',
    ),
    (_set("tasks/drawing", ["unet"]), "tasks.drawing: invalid name"),
    (_set("scheduler/max_terms", 0), "scheduler.max_terms: expected"),
    (_set("tokenizer/file", "vocab.json"), "tokenizer.file: expected a file listed in files"),
    (_set("files/manifest.json", {"bytes": 0, "integrity": "sha384-" + "A" * 64}), "list itself"),
]


@pytest.mark.parametrize(("mutate", "message"), INVALID, ids=[m for _, m in INVALID])
def test_validation_errors_name_the_field_and_the_expectation(
    model_dir: Path, body: dict[str, Any], mutate: Mutation, message: str
) -> None:
    manifest = copy.deepcopy(write_manifest(model_dir, body))
    mutate(manifest)
    with pytest.raises(ManifestError) as e:
        validate_manifest(manifest)
    assert message in str(e.value)


def test_every_problem_is_reported_at_once(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest["kind"] = "sd3"
    manifest["image"]["height"] = -1
    del manifest["scheduler"]
    with pytest.raises(ManifestError) as e:
        validate_manifest(manifest)
    assert [p.split(":")[0] for p in e.value.problems] == ["scheduler", "kind", "image.height"]
    assert str(e.value).startswith("invalid manifest: ")


def test_weights_must_name_a_tensor_cache_index(model_dir: Path, body: dict[str, Any]) -> None:
    (model_dir / INDEX_NAME).rename(model_dir / "weights.json")
    body["weights"] = "weights.json"
    with pytest.raises(ManifestError, match="weights: expected the path of a tensor-cache index"):
        write_manifest(model_dir, body)


def test_a_top_level_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"\(top level\): expected an object, got an array"):
        validate_manifest([])


def test_scheduler_config_accepts_any_keys(model_dir: Path, body: dict[str, Any]) -> None:
    body["scheduler"]["config"] = {"anything": {"nested": [1, 2]}, "x": None}
    assert write_manifest(model_dir, body)["scheduler"]["config"]["x"] is None


def test_integral_floats_count_as_integers(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest["tokenizer"]["max_length"] = 77.0
    assert validate_manifest(manifest)["tokenizer"]["max_length"] == 77


def test_manifest_error_is_an_artifact_error() -> None:
    error = ManifestError("bad", ["a: x", "b: y"])
    assert isinstance(error, ArtifactError)
    assert str(error) == "bad: a: x; b: y"
    assert error.problems == ("a: x", "b: y")


# --- load_manifest --------------------------------------------------------------


def test_a_missing_manifest_says_what_to_do(model_dir: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest\.json does not exist: .*wsd-compile"):
        load_manifest(model_dir)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nowhere does not exist or is not a directory"):
        load_manifest(tmp_path / "nowhere")


def test_malformed_json_is_reported(model_dir: Path) -> None:
    (model_dir / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_manifest(model_dir)


def test_an_undecodable_manifest_is_reported(model_dir: Path) -> None:
    (model_dir / MANIFEST_NAME).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(model_dir)


def test_a_newer_version_is_rejected_with_the_fix(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest["version"] = 4
    manifest["new_v4_field"] = {}
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as e:
        load_manifest(model_dir)
    assert str(e.value) == (
        f"{model_dir / MANIFEST_NAME}: manifest version 4 is newer than this wsd-artifacts "
        "supports (3); upgrade wsd-artifacts"
    )


def test_load_errors_name_the_file_and_the_field(model_dir: Path, body: dict[str, Any]) -> None:
    manifest = write_manifest(model_dir, body)
    manifest["image"]["width"] = "wide"
    (model_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as e:
        load_manifest(model_dir)
    assert str(e.value).startswith(f"{model_dir / MANIFEST_NAME}: invalid manifest: image.width")
    assert e.value.problems == ('image.width: expected an integer, got "wide"',)
