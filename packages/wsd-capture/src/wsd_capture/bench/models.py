"""The pipelines the benchmark times: built from a kind, or loaded from a diffusers
directory, and checked before anything large is built."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from .. import kinds
from ..errors import CaptureError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

#: The published architectures (every model kind's, full size, random weights);
#: a ``--model-dir`` holds one of these.
FULL_SIZE_KINDS: tuple[str, ...] = tuple(kinds.KINDS)
#: The pipelines this benchmark builds: the full-size architectures and each
#: kind's first tiny preset.
KINDS: tuple[str, ...] = (
    *FULL_SIZE_KINDS,
    *(kind.presets[0] for kind in kinds.KINDS.values()),
)


def cpu_pipeline(kind: str, model_dir: Path | None, seed: int) -> DiffusionPipeline:
    """The pipeline of ``kind`` in fp32 on the CPU: built, or loaded from ``model_dir``."""
    if model_dir is not None:
        from ..loading import load_pipeline

        return load_pipeline(kind, model_dir)
    if kind in kinds.PRESET_KINDS:
        from ..presets import build_preset

        return build_preset(kind)
    from ..architectures import build_random_pipeline

    return build_random_pipeline(kind, seed)


def check_model_dir(kind: str, model_dir: Path) -> None:
    """Raise :class:`CaptureError` unless ``model_dir`` is a complete diffusers
    directory of ``kind`` (``sd15`` or ``sdxl``)."""
    from ..loading import check_source

    try:
        found = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
        pipeline = found.get("_class_name")
    except (OSError, ValueError, AttributeError):
        pipeline = None  # check_source names what is wrong
    held = kinds.kind_of_pipeline_class(pipeline) if isinstance(pipeline, str) else None
    if held is not None and held.name != kind:
        raise CaptureError(f"{model_dir} holds a {pipeline}: use --kind {held.name}")
    check_source(model_dir, kind)


def check_size(kind: str, model_dir: Path | None, height: int | None, width: int | None) -> None:
    """Raise :class:`CaptureError` when the model cannot take ``height`` x ``width``,
    before anything large is built or loaded."""
    from ..capture import check_image_size, image_geometry

    if model_dir is not None:
        check_image_size(model_dir, height, width)
    elif kind in FULL_SIZE_KINDS:
        configs = kinds.model_kind(kind).architecture_record().configs()
        unet, vae = (SimpleNamespace(config=SimpleNamespace(**configs[p])) for p in ("unet", "vae"))
        image_geometry(unet, vae, height, width)
    else:
        pipe = cpu_pipeline(kind, None, 0)
        image_geometry(pipe.unet, pipe.vae, height, width)
