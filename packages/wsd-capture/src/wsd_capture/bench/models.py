"""The pipelines the benchmark times: built from a kind, or loaded from a diffusers
directory, and checked before anything large is built."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ..errors import CaptureError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

#: The pipelines this benchmark builds (``sd15``/``sdxl``: full size, random weights).
KINDS: tuple[str, ...] = ("sd15", "sdxl", "tiny-sd15", "tiny-sdxl")
#: The published architectures among `KINDS`; a ``--model-dir`` holds one of these.
FULL_SIZE_KINDS: tuple[str, ...] = ("sd15", "sdxl")


def cpu_pipeline(kind: str, model_dir: Path | None, seed: int) -> DiffusionPipeline:
    """The pipeline of ``kind`` in fp32 on the CPU: built, or loaded from ``model_dir``."""
    if model_dir is not None:
        from ..loading import load_sd15, load_sdxl

        return load_sdxl(model_dir) if kind == "sdxl" else load_sd15(model_dir)
    if kind == "tiny-sd15":
        from ..presets import build_tiny_sd15

        return build_tiny_sd15()
    if kind == "tiny-sdxl":
        from ..presets import build_tiny_sdxl

        return build_tiny_sdxl()
    from ..architectures import build_random_pipeline

    return build_random_pipeline(kind, seed)


def check_model_dir(kind: str, model_dir: Path) -> None:
    """Raise :class:`CaptureError` unless ``model_dir`` is a complete diffusers
    directory of ``kind`` (``sd15`` or ``sdxl``)."""
    from ..kinds import kind_of_pipeline_class
    from ..loading import check_source

    try:
        found = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
        pipeline = found.get("_class_name")
    except (OSError, ValueError, AttributeError):
        pipeline = None  # check_source names what is wrong
    held = kind_of_pipeline_class(pipeline) if isinstance(pipeline, str) else None
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
        from ..architectures import sd15_configs, sdxl_configs

        configs = sd15_configs() if kind == "sd15" else sdxl_configs()
        unet, vae = (SimpleNamespace(config=SimpleNamespace(**configs[p])) for p in ("unet", "vae"))
        image_geometry(unet, vae, height, width)
    else:
        pipe = cpu_pipeline(kind, None, 0)
        image_geometry(pipe.unet, pipe.vae, height, width)
