"""The model-kind registry: every registered kind is complete in every layer.

A kind has a record in ``wsd_capture.KINDS`` (pipeline class, folders, graphs,
capture, architecture, presets), one in ``wsd_compile.BUILDS`` (glue, tasks),
an entry in the manifest schema's ``kind`` enum, and a pipeline class for each
of its tasks in the web app's registry (``static/js/pipelines/registry.js``).
"""

from __future__ import annotations

import json
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from wsd_artifacts import manifest_schema
from wsd_capture import KINDS, PRESET_KINDS, PRESETS
from wsd_capture.kinds import _resolve
from wsd_compile import BUILDS
from wsd_compile.glue import GLUE_FAMILIES

KIND_NAMES = sorted(KINDS)
PIPELINE_REGISTRY = Path(str(files("wsd_web"))) / "static" / "js" / "pipelines" / "registry.js"


def _js_registry() -> dict[str, list[str]]:
    """The web app's pipeline registry: each kind with the tasks it has a class for."""
    script = (
        f"const {{ PIPELINES }} = await import({json.dumps(PIPELINE_REGISTRY.as_uri())});"
        "console.log(JSON.stringify(Object.fromEntries("
        "Object.entries(PIPELINES).map(([k, v]) => [k, Object.keys(v)]))));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    registry: dict[str, list[str]] = json.loads(out.stdout)
    return registry


def test_every_layer_knows_the_same_kinds() -> None:
    schema_kinds = manifest_schema()["properties"]["kind"]["enum"]
    assert sorted(BUILDS) == KIND_NAMES
    assert sorted(schema_kinds) == KIND_NAMES
    assert sorted(_js_registry()) == KIND_NAMES


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_kind_has_presets_of_its_own(kind: str) -> None:
    presets = KINDS[kind].presets
    assert presets, f"{kind} has no built-in preset"
    assert all(p in PRESETS and PRESET_KINDS[p] == kind for p in presets)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_kind_names_a_capture_and_an_architecture_that_exist(kind: str) -> None:
    record = KINDS[kind]
    assert callable(_resolve(record.capturer))
    architecture = record.architecture_record()
    assert set(record.folders) >= {"unet", "vae", "scheduler", *record.tokenizers}
    assert {"unet", "vae", "text_encoder"} <= set(architecture.configs())


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_kind_builds_known_glue_and_tasks_of_its_graphs(kind: str) -> None:
    build = BUILDS[kind]
    assert set(build.glue) <= set(GLUE_FAMILIES)
    assert "text-to-image" in build.tasks
    for graphs in build.tasks.values():
        assert set(graphs) <= set(KINDS[kind].graphs)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_task_of_a_kind_has_a_browser_pipeline(kind: str) -> None:
    tasks = manifest_schema()["properties"]["tasks"]["propertyNames"]["enum"]
    assert set(BUILDS[kind].tasks) <= set(tasks)
    assert set(BUILDS[kind].tasks) <= set(_js_registry()[kind])
