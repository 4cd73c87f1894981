"""Load Stable Diffusion 1.5- and SDXL-class pipelines in fp32, ready to capture for WebGPU.

Before diffusers reads anything, a local model directory is checked file by
file (every component folder, config, tokenizer and weights file, and each
safetensors file's header against its size), so that a missing or damaged
file is named in one :class:`CaptureError` instead of surfacing as one of
the many exceptions diffusers, transformers and safetensors raise.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import diffusers
import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.models.attention_processor import AttnProcessor

from .errors import CaptureError
from .kinds import KINDS, model_kind

# What to run instead, by the pipeline class found.
_WRONG_KIND_HINT = {
    cls: f"use wsd-compile {k.name} (compile_{k.name}) for {k.title} pipelines"
    for k in KINDS.values()
    for cls in k.pipeline_classes
}
_SUPPORTED = (
    "wsd compiles only "
    + " and ".join(f"{k.family} ({k.pipeline_class})" for k in KINDS.values())
    + " models"
)
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_DOWNLOAD = "download the full model (all components)"
_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# safetensors caps its JSON header at 100 MB; a larger length is not a header.
_MAX_HEADER_BYTES = 100_000_000

T = TypeVar("T")


@dataclass(frozen=True)
class _Layout:
    """The files one component folder of a diffusers directory must have.

    ``weights``: the weights file names in diffusers' and transformers' order of
    preference (the first is named when none is there); each may instead be
    sharded, with an ``<name>.index.json`` mapping tensors to shard files.
    ``one_of``: sets of other files of which one set must be complete.
    """

    config: str
    weights: tuple[str, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()


_DIFFUSERS_MODEL = _Layout(
    "config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
)
_TRANSFORMERS_MODEL = _Layout("config.json", ("model.safetensors", "pytorch_model.bin"))
_TOKENIZER = _Layout(
    "tokenizer_config.json", one_of=(("tokenizer.json",), ("vocab.json", "merges.txt"))
)
_LAYOUTS = {
    "unet": _DIFFUSERS_MODEL,
    "vae": _DIFFUSERS_MODEL,
    "text_encoder": _TRANSFORMERS_MODEL,
    "text_encoder_2": _TRANSFORMERS_MODEL,
    "tokenizer": _TOKENIZER,
    "tokenizer_2": _TOKENIZER,
    "scheduler": _Layout("scheduler_config.json"),
}


def use_webgpu_attention(pipe: DiffusionPipeline) -> None:
    """Switch attention to implementations whose graphs WebGPU accepts (numerically the same).

    torch's ``scaled_dot_product_attention`` decomposes into a safe softmax that
    reduces ``-inf`` masks through int8/bool buffers, which WGSL rejects, so the
    UNet and VAE use diffusers' classic ``AttnProcessor`` and the CLIP text
    encoder uses eager attention.
    """
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    pipe.text_encoder.set_attn_implementation("eager")
    if getattr(pipe, "text_encoder_2", None) is not None:
        pipe.text_encoder_2.set_attn_implementation("eager")


class _Findings:
    """Missing and damaged files of a model directory, by path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.missing: list[str] = []
        self.damaged: list[tuple[str, str]] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def json_object(self, path: Path) -> dict[str, object] | None:
        """The JSON object in ``path``; a missing or damaged file is recorded."""
        if not path.is_file():
            self.missing.append(self.rel(path))
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            self.damaged.append((self.rel(path), f"is not valid JSON ({_first_line(e)})"))
            return None
        if not isinstance(doc, dict):
            self.damaged.append((self.rel(path), "is not a JSON object"))
            return None
        return doc

    def raise_if_any(self, what: str) -> None:
        if self.missing:
            verb = "is" if len(self.missing) == 1 else "are"
            raise CaptureError(
                f"{what} {self.root} is incomplete: {_join(self.missing)} {verb} missing; "
                f"{_DOWNLOAD}"
            )
        if self.damaged:
            files = ", ".join(f"{rel} {why}" for rel, why in self.damaged)
            them = "it" if len(self.damaged) == 1 else "them"
            raise CaptureError(
                f"{what} {self.root} has a corrupted file: {files}; re-download {them}"
            )


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    text = lines[0]
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return text if len(text) <= 300 else text[:297] + "..."


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file (``None`` when it is one).

    Reads only the header: its length, its JSON, and the tensors' byte ranges,
    which must cover the rest of the file exactly, as safetensors requires. So
    it catches a truncated download, random bytes and a garbled header, but not
    flipped bits inside the tensor data.
    """
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            return f"is truncated (only {size} bytes)"
        header_bytes = int.from_bytes(prefix, "little")
        if header_bytes > _MAX_HEADER_BYTES:
            return "is not a safetensors file (its first bytes are not a header length)"
        if header_bytes > size - 8:
            return f"is truncated (its header alone needs {header_bytes + 8} bytes, found {size})"
        raw = f.read(header_bytes)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "has a garbled header (not valid JSON)"
    if not isinstance(header, dict):
        return "has a garbled header (not a JSON object)"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            return f"has a garbled header (no valid data_offsets for {name!r})"
        end = max(end, offsets[1])
    data = size - 8 - header_bytes
    if data < end:
        return f"is truncated ({size} of {end + 8 + header_bytes} bytes)"
    if data > end:
        extra = data - end
        return f"has {extra} byte{'s' * (extra != 1)} more than its header describes"
    return None


def _check_weights(found: _Findings, folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        index_path = folder / f"{name}.index.json"
        if (folder / name).is_file():
            shards = [folder / name]
        elif index_path.is_file():
            index = found.json_object(index_path)
            weight_map = index.get("weight_map") if index is not None else None
            if index is not None and not isinstance(weight_map, dict):
                found.damaged.append((found.rel(index_path), "has no weight_map"))
            if not isinstance(weight_map, dict):
                return
            shards = [folder / str(shard) for shard in sorted(set(weight_map.values()))]
        else:
            continue
        for shard in shards:
            if not shard.is_file():
                found.missing.append(found.rel(shard))
            elif shard.suffix == ".safetensors":
                problem = safetensors_problem(shard)
                if problem is not None:
                    found.damaged.append((found.rel(shard), problem))
        return
    # None there: name the preferred file, and a variant that diffusers would skip.
    first = names[0]
    stem, suffix = first.rsplit(".", 1)
    variants = sorted(p.name for p in folder.glob(f"{stem}.*.{suffix}"))
    hint = f" (only the variant {variants[0]} is there)" if variants else ""
    found.missing.append(f"{found.rel(folder / first)}{hint}")


def _check_component(found: _Findings, folder: Path, layout: _Layout) -> None:
    if not folder.is_dir():
        found.missing.append(f"{found.rel(folder)}/")
        return
    found.json_object(folder / layout.config)
    if layout.one_of and not any(
        all((folder / name).is_file() for name in names) for names in layout.one_of
    ):
        first, *others = layout.one_of
        alternatives = " or ".join(" and ".join(names) for names in others)
        found.missing.append(f"{_join([found.rel(folder / n) for n in first])} (or {alternatives})")
    if layout.weights:
        _check_weights(found, folder, layout.weights)


_CONVERT = (
    "convert it with StableDiffusionPipeline.from_single_file(FILE).save_pretrained(DIR) "
    "(StableDiffusionXLPipeline for SDXL)"
)


def _not_a_pipeline(path: Path) -> CaptureError:
    if (path / "config.json").is_file():
        return CaptureError(
            f"{path} has no model_index.json: it holds one model (config.json), not a "
            "diffusers pipeline; point to the pipeline's directory (with model_index.json, "
            "unet/, vae/, ...)"
        )
    single = sorted(p.name for p in path.iterdir() if p.suffix in _SINGLE_FILE_SUFFIXES)
    if single:
        return CaptureError(
            f"{path} has no model_index.json but holds {single[0]}, a single-file "
            f"checkpoint: {_CONVERT}"
        )
    return CaptureError(
        f"{path} has no model_index.json: point to a diffusers pipeline directory "
        "(as written by save_pretrained or `wsd-capture preset`)"
    )


def _check_directory(path: Path, expected: tuple[str, ...], components: tuple[str, ...]) -> None:
    index_path = path / "model_index.json"
    if not index_path.is_file():
        raise _not_a_pipeline(path)
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CaptureError(
            f"{index_path} is not valid JSON ({_first_line(e)}): re-download the model"
        ) from e
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise CaptureError(
            f"{index_path} names no pipeline class (_class_name): it is not a diffusers "
            f"pipeline index; re-download the model or re-save it with save_pretrained"
        )
    class_name = index["_class_name"]
    if class_name not in expected:
        hint = _WRONG_KIND_HINT.get(class_name, f"{_SUPPORTED}; point to one of those")
        raise CaptureError(f"{path} holds a {class_name}, not a {expected[0]}: {hint}")
    found = _Findings(path)
    for name in components:
        entry = index.get(name)
        if not isinstance(entry, list) or len(entry) != 2 or None in entry:
            found.missing.append(f"the {name} entry of model_index.json")
        else:
            _check_component(found, path / name, _LAYOUTS[name])
    found.raise_if_any("model directory")


def _is_local(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` means a local path rather than a hub id (``owner/name``)."""
    text = os.fspath(source)
    if not _HUB_ID.match(text):
        return True
    # "models/sd15" is a local path when "models" is a local directory.
    return Path(text).exists() or Path(text.split("/", 1)[0]).is_dir()


def check_source(source: str | os.PathLike[str], kind: str) -> None:
    """What :func:`load_sd15` (``kind="sd15"``) or :func:`load_sdxl` (``"sdxl"``) checks
    before loading anything: raise :class:`CaptureError` naming the problem.

    A local ``source`` must be a diffusers directory of the pipeline class of
    ``kind`` with every component's folder, config, tokenizer files and weights,
    each safetensors file complete (its header against its size). A hub id
    (``owner/name``) that is not a local path is left to the loader.
    """
    record = model_kind(kind)
    path = Path(source)
    if path.is_dir():
        _check_directory(path, record.pipeline_classes, record.folders)
    elif path.exists():
        convert = f": a single-file checkpoint? {_CONVERT}"
        hint = convert if path.suffix in _SINGLE_FILE_SUFFIXES else ""
        raise CaptureError(f"{path} is a file, not a diffusers pipeline directory{hint}")
    elif _is_local(source):
        raise CaptureError(f"{path} does not exist: give a diffusers pipeline directory")


def _load(source: str | os.PathLike[str], what: str, load: Callable[[], T]) -> T:
    """``load()``, with whatever diffusers, transformers or safetensors raise as one
    :class:`CaptureError` (the checks above leave few such failures)."""
    try:
        return load()
    except Exception as e:  # they raise OSError, ValueError, RuntimeError, SafetensorError...
        if not Path(source).exists():
            # The hub's reasons (offline, unknown id, gated) run to paragraphs; the
            # exception chain keeps them.
            raise CaptureError(
                f"{source} is not a local directory, and the hub cannot provide it as a "
                f"model id ({type(e).__name__}): give a diffusers pipeline directory, or a "
                "hub id when the hub is reachable"
            ) from e
        raise CaptureError(
            f"cannot load {source} as {what} ({_first_line(e)}): its files do not fit "
            "together; re-download the model or re-save it with save_pretrained"
        ) from e


def load_pipeline(
    kind: str, source: str | os.PathLike[str], *, vae: str | os.PathLike[str] | None = None
) -> DiffusionPipeline:
    """Load a pipeline of ``kind`` (a ``wsd_capture.KINDS`` name) in fp32 with
    WebGPU-safe attention, without the parts wsd does not run (safety checker, watermarker).

    ``source`` is a local diffusers directory or, when the hub is reachable, a
    hub id such as ``owner/name``. ``vae`` replaces the pipeline's VAE with
    another ``AutoencoderKL`` (a directory or hub id), e.g. an fp16-safe SDXL
    VAE: its config's ``force_upcast`` decides whether fp16 builds decode in
    fp32. A local directory with a missing, truncated or garbled file raises
    :class:`CaptureError` naming the file, before anything is loaded.
    """
    record = model_kind(kind)
    check_source(source, kind)
    options: dict[str, object] = dict(record.load_options)
    if vae is not None:
        options["vae"] = _load_vae(vae)
    pipeline_class = getattr(diffusers, record.pipeline_class)
    pipe: DiffusionPipeline = _load(
        source,
        record.noun,
        lambda: pipeline_class.from_pretrained(str(source), dtype=torch.float32, **options),
    )
    use_webgpu_attention(pipe)
    return pipe


def _load_vae(vae: str | os.PathLike[str]) -> AutoencoderKL:
    vae_path = Path(vae)
    if vae_path.is_dir():
        found = _Findings(vae_path)
        _check_component(found, vae_path, _DIFFUSERS_MODEL)
        found.raise_if_any("VAE directory")
    elif _is_local(vae):
        raise CaptureError(f"{vae_path} is not a directory: give a diffusers AutoencoderKL")
    return _load(
        vae,
        "an AutoencoderKL (VAE)",
        lambda: AutoencoderKL.from_pretrained(str(vae), dtype=torch.float32),
    )


def load_sd15(
    source: str | os.PathLike[str], *, vae: str | os.PathLike[str] | None = None
) -> StableDiffusionPipeline:
    """:func:`load_pipeline` for a Stable Diffusion 1.5-class pipeline (``kind="sd15"``)."""
    pipe: StableDiffusionPipeline = load_pipeline("sd15", source, vae=vae)
    return pipe


def load_sdxl(
    source: str | os.PathLike[str], *, vae: str | os.PathLike[str] | None = None
) -> StableDiffusionXLPipeline:
    """:func:`load_pipeline` for an SDXL pipeline (``kind="sdxl"``), without the watermarker."""
    pipe: StableDiffusionXLPipeline = load_pipeline("sdxl", source, vae=vae)
    return pipe
