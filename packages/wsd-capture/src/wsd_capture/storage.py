"""A captured pipeline on disk, so that capture and compile can run as separate processes.

Layout of a capture directory::

    metadata.json       PipelineMetadata (tokenizer text by reference) and the file list
    tokenizer.json      the portable HF tokenizers file for the browser
    tokenizer_2.json    the second tokenizer's (SDXL)
    text_encoder.pt2    one torch.export ExportedProgram per component
    unet.pt2
    vae_decode.pt2
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from wsd_artifacts import atomic_directory, check_new_directory

from .capture import CapturedComponent, CapturedPipeline
from .errors import CaptureError
from .metadata import PipelineMetadata

FORMAT = "wsd-capture/1"
METADATA_FILE = "metadata.json"
TOKENIZER_FILE = "tokenizer.json"
_TOKENIZERS = {"tokenizer": TOKENIZER_FILE, "tokenizer_2": "tokenizer_2.json"}


def save_capture(captured: CapturedPipeline, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``captured`` to the new (or empty) directory ``out_dir``, all or nothing."""
    out = Path(out_dir)
    data = captured.metadata.to_dict()
    tokenizers = {key: data[key].pop("tokenizer_json") for key in _TOKENIZERS if data.get(key)}
    programs = {name: f"{name}.pt2" for name in captured.components}
    record = {
        "format": FORMAT,
        "files": {**{key: _TOKENIZERS[key] for key in tokenizers}, "programs": programs},
        "metadata": data,
    }
    with atomic_directory(out, check=lambda o: check_new_directory(o, CaptureError)) as tmp:
        for name, component in captured.components.items():
            torch.export.save(component.program, tmp / programs[name])
        for key, text in tokenizers.items():
            (tmp / _TOKENIZERS[key]).write_text(text, encoding="utf-8")
        (tmp / METADATA_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return out


def _read_record(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise CaptureError(
            f"{directory} has no {METADATA_FILE}: give a directory written by "
            "`wsd-capture sd15` or save_capture"
        )
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise CaptureError(f"{path} is not valid JSON ({e}): capture the pipeline again") from e
    if record.get("format") != FORMAT:
        raise CaptureError(
            f"{path} has format {record.get('format')!r}, this wsd-capture reads {FORMAT!r}: "
            "capture the pipeline again with this version"
        )
    return record


def load_capture(directory: str | os.PathLike[str]) -> CapturedPipeline:
    """Read a capture directory written by :func:`save_capture`."""
    root = Path(directory)
    record = _read_record(root)
    files = record["files"]
    tokenizers = {key: root / files[key] for key in _TOKENIZERS if key in files}
    paths = [*tokenizers.values(), *(root / f for f in files["programs"].values())]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CaptureError(
            f"{root} lacks {', '.join(missing)}: the capture is incomplete, capture it again"
        )
    data = record["metadata"]
    for key, path in tokenizers.items():
        data[key]["tokenizer_json"] = path.read_text(encoding="utf-8")
    metadata = PipelineMetadata.from_dict(data)
    components = {
        name: CapturedComponent(
            spec=metadata.components[name], program=torch.export.load(root / file)
        )
        for name, file in files["programs"].items()
    }
    return CapturedPipeline(components=components, metadata=metadata)
