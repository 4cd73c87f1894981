"""The model kinds wsd captures: one record per kind, read by every layer.

A kind is a family of diffusers pipelines that share components and graphs
(``sd15``: ``StableDiffusionPipeline``; ``sdxl``: ``StableDiffusionXLPipeline``).
Its record says which pipeline class it is, which component folders a
diffusers directory of it holds, which graphs are captured from it (in the
order the page runs them), how to load and capture it, its random-weight
architecture and its built-in presets. Nothing else in wsd spells out the list
of kinds: the command lines, the loader's checks, the benchmark and
``wsd-compile`` ask this table.

This module imports nothing heavy: loaders and capturers are named as
``module:function`` inside this package and imported on first use, so command
lines can build their parsers before torch and diffusers load.

Adding a kind: a record here (with its own capture module), a record in
``wsd_compile.kinds``, the kind in the manifest schema's ``kind`` enum, and a
pipeline class in the web app's registry (``static/js/pipelines/registry.js``);
see ``docs/structure.md``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import CaptureError

if TYPE_CHECKING:
    import diffusers

    from .architectures import Architecture
    from .capture import CapturedPipeline


def _resolve(target: str) -> Any:
    """The object ``module:name`` of this package."""
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


@dataclass(frozen=True)
class ModelKind:
    """One kind of pipeline wsd captures and compiles.

    - ``name``: the kind as manifests, command lines and APIs spell it (``sd15``).
    - ``title``: how messages name its pipelines (``SD 1.5-class``); ``family``: in
      full (``Stable Diffusion 1.5-class``); ``noun``: one of them (``a Stable
      Diffusion pipeline``).
    - ``pipeline_class``: the diffusers class of its ``model_index.json``;
      ``editing_classes``: the classes of the same components saved by diffusers'
      editing pipelines (image to image, inpainting), taken as well.
    - ``folders``: the component folders of its diffusers directory.
    - ``graphs``: the components captured from it, in the order the page runs them.
    - ``parts``: the graphs in words, for help texts.
    - ``tokenizers``: its tokenizers (folders), each exported as ``<name>.json``.
    - ``load_options``: keyword arguments of ``from_pretrained`` (the parts wsd
      does not run, such as the safety checker, left out).
    - ``capturer``: ``module:function`` of its capture
      (``pipe, *, height, width -> CapturedPipeline``); ``architecture``:
      ``module:name`` of its published architecture (an
      ``wsd_capture.architectures.Architecture``).
    - ``presets``: the built-in tiny presets of this kind.
    """

    name: str
    title: str
    family: str
    noun: str
    pipeline_class: str
    folders: tuple[str, ...]
    graphs: tuple[str, ...]
    parts: str
    tokenizers: tuple[str, ...]
    capturer: str
    architecture: str
    presets: tuple[str, ...]
    load_options: Mapping[str, Any] = field(default_factory=dict)
    editing_classes: tuple[str, ...] = ()

    @property
    def pipeline_classes(self) -> tuple[str, ...]:
        """Every ``model_index.json`` class of this kind: its own, then the editing ones."""
        return (self.pipeline_class, *self.editing_classes)

    def capture(
        self,
        pipe: diffusers.DiffusionPipeline,
        *,
        height: int | None = None,
        width: int | None = None,
    ) -> CapturedPipeline:
        """Export this kind's graphs from a loaded pipeline (with ``capturer``)."""
        captured: CapturedPipeline = _resolve(self.capturer)(pipe, height=height, width=width)
        return captured

    def architecture_record(self) -> Architecture:
        """The published architecture (its configs and builder, for random-weight builds)."""
        found: Architecture = _resolve(self.architecture)
        return found


SD15 = ModelKind(
    name="sd15",
    title="SD 1.5-class",
    family="Stable Diffusion 1.5-class",
    noun="a Stable Diffusion pipeline",
    pipeline_class="StableDiffusionPipeline",
    folders=("vae", "text_encoder", "tokenizer", "unet", "scheduler"),
    graphs=("text_encoder", "vae_encode", "unet", "vae_decode"),
    parts="text encoder, VAE encoder, UNet, VAE decoder",
    tokenizers=("tokenizer",),
    capturer="capture:capture_sd15",
    architecture="architectures:SD15_ARCHITECTURE",
    presets=("tiny-sd15", "tiny-sd15-v", "tiny-sd15-inpaint"),
    load_options={
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    },
    editing_classes=("StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"),
)

SDXL = ModelKind(
    name="sdxl",
    title="SDXL",
    family="SDXL",
    noun="an SDXL pipeline",
    pipeline_class="StableDiffusionXLPipeline",
    folders=(*SD15.folders, "text_encoder_2", "tokenizer_2"),
    graphs=("text_encoder", "text_encoder_2", "vae_encode", "unet", "vae_decode"),
    parts="both text encoders, VAE encoder, UNet with added conditioning, VAE decoder",
    tokenizers=("tokenizer", "tokenizer_2"),
    capturer="xl:capture_sdxl",
    architecture="architectures:SDXL_ARCHITECTURE",
    presets=("tiny-sdxl", "tiny-sdxl-inpaint"),
    load_options={"add_watermarker": False},
    editing_classes=("StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"),
)

#: Every kind, by name.
KINDS: Mapping[str, ModelKind] = {kind.name: kind for kind in (SD15, SDXL)}

#: The kind of each built-in preset.
PRESET_KINDS: Mapping[str, str] = {
    preset: kind.name for kind in KINDS.values() for preset in kind.presets
}


def model_kind(name: str) -> ModelKind:
    """The record of kind ``name``; :class:`CaptureError` naming the kinds there are."""
    kind = KINDS.get(name)
    if kind is None:
        raise CaptureError(f"unknown model kind {name!r}: choose one of {', '.join(KINDS)}")
    return kind


def kind_of_pipeline_class(class_name: str) -> ModelKind | None:
    """The kind whose diffusers pipeline class is ``class_name``, if any."""
    return next((k for k in KINDS.values() if class_name in k.pipeline_classes), None)


def capture_model(
    kind: str,
    source: str | os.PathLike[str],
    *,
    height: int | None = None,
    width: int | None = None,
    vae: str | os.PathLike[str] | None = None,
) -> CapturedPipeline:
    """Check, load and capture the ``kind`` pipeline at ``source`` (a diffusers directory).

    The files are checked first, then the size against the configs, so a bad
    input fails before minutes of loading; ``vae`` replaces the pipeline's VAE.
    """
    from .capture import check_image_size
    from .loading import check_source, load_pipeline

    record = model_kind(kind)
    check_source(source, record.name)
    check_image_size(source, height, width, vae_dir=vae)
    return record.capture(load_pipeline(record.name, source, vae=vae), height=height, width=width)
