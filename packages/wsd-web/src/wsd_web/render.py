"""``render``: run the app headless in Chromium on a build and keep the image.

The same page a user opens generates the image (WebGPU on the machine's GPU,
or SwiftShader on a CPU-only machine); the result is written as a PNG. The page
runs the first of the build's kernel paths the GPU can run, or the one asked for
(its ``?kernel-path=NAME``). The VAE decodes the image whole, in tiles, or
in tiles only where the GPU cannot bind the whole decoder's buffers (the
generate option ``vaeTiling``: ``on``, ``off``, ``auto``). With sequential offload
(the generate option ``offload``) the text encoders' and the VAE decoder's weights
are on the GPU only while they run. With a GPU memory budget (``memory_budget``,
in GiB: the page's ``?memory-budget=``) a build that cannot fit is refused before
its download, and offload and tiles, where not given, are chosen to fit. Each
rendering keeps the most GPU bytes held during each stage (``peak_bytes``: text
encoder, denoise, decode), whether it ran with offload (``offload``) and the bytes
the build reckons its modes need (``memory_need_bytes``). Image to image
(``image``: a picture file, fitted to the build's size as the page fits a chosen
file; ``strength``) runs the build's image-to-image pipeline.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from wsd_artifacts import ArtifactError, load_manifest, write_bytes_atomic

from .headless import HeadlessError, headless_page
from .png import encode_png

#: Scheduler names the app implements (the page's registry; a test keeps them equal).
SCHEDULERS = ("ddim", "dpmpp-2m", "dpmpp-2m-karras", "euler", "euler-a", "lcm", "pndm")
#: How the VAE decodes and encodes (the app's ``vaeTiling``): tiles where needed, tiles, whole.
VAE_TILES = ("auto", "on", "off")
GIB = 2**30


class RenderError(Exception):
    """The render could not run: bad options, or the page failed."""


#: Leading bytes of the picture formats a browser decodes -> MIME type.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)
#: The largest start image file taken (a browser decodes it in memory).
MAX_IMAGE_BYTES = 64 * 2**20


def _read_limited(file: Path, limit: int, what: str, limit_text: str) -> bytes:
    """The bytes of ``file`` (a ``what``: "start image", "LoRA"), refused with one line
    when it cannot be read or has more than ``limit`` bytes."""
    try:
        size = file.stat().st_size
        if size > limit:
            too_big = f"a {what} file may have {limit_text} at most"
            raise RenderError(f"{file} is {size} bytes; {too_big}")
        return file.read_bytes()
    except OSError as e:
        raise RenderError(f"cannot read the {what} {file}: {e.strerror or e}") from None


def image_file(path: str | Path) -> dict[str, str]:
    """A start image (or mask) for the page: the file's bytes (base64) and MIME type.

    Raises a :class:`RenderError` naming the file unless it is a PNG, JPEG, WebP,
    GIF or BMP file of at most 64 MiB.
    """
    file = Path(path)
    data = _read_limited(file, MAX_IMAGE_BYTES, "start image", "64 MiB")
    mime = next((m for magic, m in _IMAGE_MAGIC if data.startswith(magic)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None:
        raise RenderError(f"{file} is not a PNG, JPEG, WebP, GIF or BMP image")
    return {"base64": base64.b64encode(data).decode(), "type": mime}


#: The largest LoRA file taken (what the page reads: an ArrayBuffer of at most 2 GiB - 1).
MAX_LORA_BYTES = 2**31 - 1


def lora_option(spec: str) -> tuple[str, float]:
    """``FILE[:SCALE]`` (``--lora``) as (file, scale); the scale defaults to 1."""
    path, sep, tail = spec.rpartition(":")
    if sep:
        try:
            return path, float(tail)
        except ValueError:
            pass
    return spec, 1.0


def lora_file(path: str | Path, scale: float) -> dict[str, Any]:
    """A LoRA for the page: the file's bytes (base64), name and scale. The page
    reads and checks the file; here only that it is a file it can take."""
    file = Path(path)
    if not math.isfinite(scale):
        raise RenderError(f"the LoRA scale {scale} of {file} is not a number")
    data = _read_limited(file, MAX_LORA_BYTES, "LoRA", "2 GiB")
    return {"base64": base64.b64encode(data).decode(), "name": file.name, "scale": scale}


def check_scheduler(name: str | None) -> None:
    """Raise a :class:`RenderError` listing the valid names unless ``name`` is one (or None)."""
    if name is None or name in SCHEDULERS:
        return
    valid = ", ".join(SCHEDULERS)
    raise RenderError(f"unknown scheduler {name!r}; choose one of {valid}")


@dataclass(frozen=True)
class Rendering:
    """What one headless generation produced."""

    rgba: bytes
    width: int
    height: int
    scheduler: str
    timings: dict[str, Any]
    adapter: str
    latents: list[float] | None = None
    gpu_bytes: list[int] = field(default_factory=list)
    #: The kernel path the page ran (None: a page that does not say).
    kernel_path: str | None = None
    #: The tiles the VAE decoded the image in (0: whole).
    vae_tiles: int = 0
    #: The most GPU bytes held during each stage (``text_encoder``, ``denoise``, ``decode``;
    #: None: a page that does not say).
    peak_bytes: dict[str, int] | None = None
    #: Whether the generation ran with sequential offload.
    offload: bool = False
    #: The GPU bytes the build reckons the generation's modes need (None: it does not say).
    memory_need_bytes: int | None = None
    #: The generation's parameters as the page writes them into its PNGs (None: not said).
    parameters: str | None = None

    def png(self) -> bytes:
        """The image as PNG, with the parameters in an iTXt chunk (keyword ``parameters``)."""
        text = {"parameters": self.parameters} if self.parameters else None
        return encode_png(self.rgba, self.width, self.height, text)


def _options(
    prompt: str,
    negative_prompt: str,
    seed: int,
    steps: int,
    guidance: float,
    scheduler: str | None,
    return_latents: bool,
    original_size: tuple[int, int] | None = None,
    crops_coords_top_left: tuple[int, int] | None = None,
    target_size: tuple[int, int] | None = None,
    vae_tiling: str = "auto",
    offload: bool | None = None,
    memory_budget: float | None = None,
    image: str | Path | None = None,
    strength: float | None = None,
    mask: str | Path | None = None,
    loras: Sequence[tuple[str | Path, float]] = (),
) -> dict[str, Any]:
    if seed < 0 or seed >= 2**64:
        raise RenderError(f"seed {seed} is out of range; use 0 <= seed < 2**64")
    if not 1 <= steps <= 150:
        raise RenderError(f"steps {steps} is out of range; use 1 to 150")
    check_scheduler(scheduler)
    if vae_tiling not in VAE_TILES:
        raise RenderError(f"VAE tiling {vae_tiling!r}: choose {', '.join(VAE_TILES)}")
    if offload is not None and not isinstance(offload, bool):
        raise RenderError(f"offload {offload!r}: give True or False")
    check_memory_budget(memory_budget)
    options: dict[str, Any] = {
        "prompt": prompt,
        "negativePrompt": negative_prompt,
        "seed": str(seed),
        "steps": steps,
        "guidance": guidance,
        "returnLatents": return_latents,
        "previewEvery": 0,
        "vaeTiling": vae_tiling,
    }
    if memory_budget is None:
        options["offload"] = bool(offload)
    else:
        # Without offload given, the budget decides (the page's option left out).
        if offload is not None:
            options["offload"] = offload
        options["memoryBudget"] = budget_bytes(memory_budget)
    if scheduler is not None:
        options["scheduler"] = scheduler
    if (strength is not None or mask is not None) and image is None:
        what = "a mask" if mask is not None else "a strength"
        raise RenderError(f"{what} needs a start image: give the image too")
    if image is not None:
        if strength is not None and not 0 < strength <= 1:
            raise RenderError(f"strength {strength} is out of range; use 0 < strength <= 1")
        options["task"] = "image-to-image" if mask is None else "inpainting"
        options["imageFile"] = image_file(image)
        if mask is not None:
            options["maskFile"] = image_file(mask)
        if strength is not None:
            options["strength"] = strength
    if loras:
        options["loraFiles"] = [lora_file(path, scale) for path, scale in loras]
    for key, what, value in (
        ("originalSize", "original_size", original_size),
        ("cropsCoordsTopLeft", "crops_coords_top_left", crops_coords_top_left),
        ("targetSize", "target_size", target_size),
    ):
        if value is None:
            continue
        if len(value) != 2 or any(int(v) != v or v < 0 for v in value):
            raise RenderError(f"{what} {value} is not a pair of non-negative integers")
        options[key] = [int(v) for v in value]
    return options


def check_memory_budget(gib: float | None) -> None:
    """Raise a :class:`RenderError` unless ``gib`` is None or a positive finite number."""
    if gib is None:
        return
    if isinstance(gib, bool) or not isinstance(gib, (int, float)) or not 0 < gib < math.inf:
        raise RenderError(f"memory budget {gib!r}: give the GPU memory budget in GiB, above 0")


def budget_bytes(gib: float) -> int:
    """A budget in GiB as bytes (what the page's ``memoryBudget`` takes)."""
    return round(gib * GIB)


def page_path(kernel_path: str | None, memory_budget: float | None = None) -> str:
    """The page to open: ``index.html``, asking for ``kernel_path`` by name and for a GPU
    memory budget (GiB) when given."""
    query: dict[str, str] = {}
    if kernel_path is not None:
        if not kernel_path:
            raise RenderError("the kernel path name is empty; give one of the build's kernel paths")
        query["kernel-path"] = kernel_path
    if memory_budget is not None:
        check_memory_budget(memory_budget)
        query["memory-budget"] = repr(float(memory_budget))
    return "index.html" + ("?" + urlencode(query) if query else "")


def check_output(out: str | Path) -> Path:
    """The PNG path to write, or a :class:`RenderError` if it is not a ``.png``."""
    path = Path(out)
    if path.suffix.lower() != ".png":
        raise RenderError(f"{path} does not end in .png; name the output FILE.png")
    return path


def render_many(
    model_dir: str | Path,
    runs: list[dict[str, Any]],
    *,
    kernel_path: str | None = None,
    memory_budget: float | None = None,
    timeout_s: float = 600,
) -> list[Rendering]:
    """Generate once per entry of ``runs`` (keyword arguments of :func:`render`) in one page.

    Returns one :class:`Rendering` each; ``gpu_bytes`` records the runtime's GPU
    bytes in use after each generation. Each run's ``offload`` (default False) sets
    sequential offload for its generation. ``kernel_path`` names the build's kernel
    path to run (the page fails if the GPU cannot run it); default: the first it runs.
    ``memory_budget`` (GiB) is the page's GPU memory budget: a build that cannot fit
    is refused before its download, and in each run an ``offload`` not given (None)
    and ``vae_tiling`` auto are chosen to fit it.
    """
    page = page_path(kernel_path, memory_budget)
    options = [
        _options(
            **{
                "negative_prompt": "",
                "seed": 0,
                "steps": 20,
                "guidance": 7.5,
                "scheduler": None,
                "return_latents": False,
                **run,
                "memory_budget": memory_budget,
            }
        )
        for run in runs
    ]
    try:
        load_manifest(model_dir)
    except ArtifactError as e:
        raise RenderError(str(e)) from None
    with headless_page(model_dir, page) as (tab, errors):
        tab.set_default_timeout(timeout_s * 1000)
        try:
            ready = tab.evaluate(
                "window.wsd.ready.then(r => ({adapter: r.adapter, kernelPath: r.kernelPath}))"
            )
        except Exception as e:
            raise HeadlessError(_page_failure(e, errors)) from None
        out = []
        for opts in options:
            try:
                result = tab.evaluate("o => window.wsd.generate(o)", opts)
                gpu_bytes = int(tab.evaluate("window.wsd.gpuBytes()"))
            except Exception as e:
                raise HeadlessError(_page_failure(e, errors)) from None
            out.append(
                Rendering(
                    rgba=base64.b64decode(result["rgba"]),
                    width=int(result["width"]),
                    height=int(result["height"]),
                    scheduler=str(result["scheduler"]),
                    timings=dict(result["timings"]),
                    adapter=str(ready["adapter"]),
                    latents=result["latents"],
                    gpu_bytes=[gpu_bytes],
                    kernel_path=ready.get("kernelPath"),
                    vae_tiles=int(result.get("vaeTiles") or 0),
                    peak_bytes=_peak_bytes(result.get("peakBytes")),
                    offload=bool(result.get("offload", opts.get("offload", False))),
                    memory_need_bytes=_optional_int(result.get("memoryNeedBytes")),
                    parameters=result.get("parameters"),
                )
            )
        return out


def _peak_bytes(peaks: Any) -> dict[str, int] | None:
    """A generation's ``peakBytes`` ({textEncoder, denoise, decode}) in snake_case."""
    if not isinstance(peaks, dict):
        return None
    keys = (("text_encoder", "textEncoder"), ("denoise", "denoise"), ("decode", "decode"))
    return {key: int(peaks[js]) for key, js in keys if js in peaks}


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _page_failure(error: Exception, seen: list[str]) -> str:
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    message = message.removeprefix("Error: ").removeprefix("Page.evaluate: ")
    extra = "; ".join(s for s in seen if s not in message)
    return f"the page failed: {message}" + (f" (browser: {extra})" if extra else "")


def render(
    model_dir: str | Path,
    *,
    prompt: str,
    negative_prompt: str = "",
    seed: int = 0,
    steps: int = 20,
    guidance: float = 7.5,
    scheduler: str | None = None,
    return_latents: bool = False,
    original_size: tuple[int, int] | None = None,
    crops_coords_top_left: tuple[int, int] | None = None,
    target_size: tuple[int, int] | None = None,
    kernel_path: str | None = None,
    vae_tiling: str = "auto",
    offload: bool | None = None,
    memory_budget: float | None = None,
    image: str | Path | None = None,
    strength: float | None = None,
    mask: str | Path | None = None,
    loras: Sequence[tuple[str | Path, float]] = (),
    timeout_s: float = 600,
) -> Rendering:
    """Generate one image from the build in ``model_dir`` in headless Chromium.

    ``scheduler`` defaults to the model's own (its scheduler config). For an
    SDXL build an empty ``negative_prompt`` means none (diffusers'
    ``negative_prompt=None``), and ``original_size``, ``crops_coords_top_left``
    and ``target_size`` (height/top first, in pixels) set its micro-conditioning
    (default: the image size and (0, 0), as diffusers). ``kernel_path`` names
    the build's kernel path to run; default: the first the GPU can run.
    ``vae_tiling`` (``auto``, ``on``, ``off``) says how the VAE decodes: in
    tiles where the GPU needs it, in tiles (the build needs ``vae_tiling``), whole.
    ``offload``: sequential offload from this generation on (the text encoders' and
    the VAE decoder's weights on the GPU only while they run); None (not given): off,
    or with a ``memory_budget`` as the budget decides. ``memory_budget``: the GPU
    memory (GiB) the page may use; a build that cannot fit is refused before its
    download, and offload (where None) and tiles (where auto) are chosen to fit.
    ``image``: image to image from this picture file (PNG, JPEG, WebP, GIF, BMP),
    fitted to the build's size as the page fits a chosen file, repainted by
    ``strength`` (default 0.8, diffusers' default). With ``mask`` (a picture file
    too, white where the image is repainted) it inpaints (default strength: 1 for
    SD 1.5, 0.9999 for SDXL, diffusers' defaults). ``loras``: (file, scale) pairs,
    LoRA files merged into the weights for the generation (diffusers/PEFT or kohya).
    """
    run = {
        "loras": loras,
        "image": image,
        "strength": strength,
        "mask": mask,
        "original_size": original_size,
        "crops_coords_top_left": crops_coords_top_left,
        "target_size": target_size,
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "steps": steps,
        "guidance": guidance,
        "scheduler": scheduler,
        "return_latents": return_latents,
        "vae_tiling": vae_tiling,
        "offload": offload,
    }
    return render_many(
        model_dir, [run], kernel_path=kernel_path, memory_budget=memory_budget, timeout_s=timeout_s
    )[0]


def write_rendering(rendering: Rendering, out: str | Path) -> dict[str, Any]:
    """Write the PNG at ``out`` and its timings beside it (``.json``); return the timings record."""
    path = check_output(out)
    record = {
        "image": str(path),
        "width": rendering.width,
        "height": rendering.height,
        "scheduler": rendering.scheduler,
        "adapter": rendering.adapter,
        "kernel_path": rendering.kernel_path,
        "vae_tiles": rendering.vae_tiles,
        "peak_bytes": rendering.peak_bytes,
        "offload": rendering.offload,
        "memory_need_bytes": rendering.memory_need_bytes,
        "parameters": rendering.parameters,
        "timings": rendering.timings,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, rendering.png())
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
