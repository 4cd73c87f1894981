"""The PyTorch side of the side-by-side benchmark: diffusers on PyTorch, stage by stage.

  python -m wsd_capture.bench --kind {sd15,sdxl,tiny-sd15,tiny-sdxl} [--height H --width W]
      [--steps 20] [--precision fp32 fp16] [--device cuda] [--warmup 3] [--repeats 10]
      [--seed 0] [--json OUT] [--model-dir DIR]

times the work our WebGPU pipeline does per generation, done by diffusers'
models on PyTorch on the same GPU, so that the two can be compared stage by
stage. The prompts are :data:`PROMPT` and :data:`NEGATIVE_PROMPT`, guidance
7.5, ``--steps`` steps:

- ``text_encoder_ms``: the negative and the positive prompt through the text
  encoder (SDXL: both encoders, penultimate hidden states and the second
  encoder's pooled projection), each prompt at batch 1 as diffusers and our
  pipeline do. Tokenization is done once up front and not timed.
- ``unet_step_ms``: one UNet forward at batch 2 (the classifier-free guidance
  pair: negative, positive) at one timestep, with SDXL's ``added_cond_kwargs``
  (pooled text embeddings and ``add_time_ids``).
- ``scheduler_step_ms``: the guidance combine and ``scheduler.step`` of the
  model's own scheduler (SD 1.5: PNDM, SDXL: Euler), at the middle step of a
  generation, so that multistep schedulers run their steady-state update.
- ``vae_decode_ms``: ``vae.decode(latents / scaling_factor)`` at batch 1.
- ``generation_ms``: a whole generation of ``--steps`` steps: text encoding,
  initial latents, the loop (``scale_model_input``, UNet, guidance, scheduler
  step), VAE decode to an image tensor in [0, 1] (no PIL conversion).

The models have the real architectures and random weights, so nothing is
downloaded: ``sd15`` and ``sdxl`` are SD 1.5's and SDXL base's published
configs (:mod:`wsd_capture.architectures`, weights seeded by ``--seed``),
``tiny-sd15`` and ``tiny-sdxl`` the built-in presets; ``--model-dir`` loads a
diffusers directory of kind ``sd15`` or ``sdxl`` instead. Latents are H/8 x W/8.

How it measures: everything runs under ``torch.inference_mode()`` with
diffusers' default attention (``AttnProcessor2_0``, i.e. torch's
``scaled_dot_product_attention``; SDPA in the text encoders too), weights in
the precision's dtype (``--precision fp32 fp16``); in fp16 an SDXL VAE whose
config says ``force_upcast`` runs in fp32, as diffusers runs it. TF32 is left
at PyTorch's defaults (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32`` are recorded, never changed). Each stage
runs ``--warmup`` times untimed, then ``--repeats`` times timed; a whole
generation is long, so it runs ``min(warmup, 1)`` times untimed and
``min(repeats, max(3, repeats // 3))`` times timed. On CUDA a sample is the
time between two CUDA events around the stage, the queue drained before it
starts (so the CPU's launch overhead counts, as it does in a generation);
on the CPU it is ``time.perf_counter``. Reported per stage in milliseconds:
median, min, max and every sample. ``peak_gpu_bytes`` is
``torch.cuda.max_memory_allocated()`` over the generation runs (null on the
CPU). Each precision's models are built (in fp32 on the CPU, then moved and
cast) after the previous precision's are freed.

Output: a table per precision on stdout (progress on stderr) and, with
``--json OUT``, a list of records, one per precision. Exit status 0; 1 with
one line on stderr when CUDA is not available or a model directory cannot be
loaded; 2 on a usage error (an unknown kind, a size the model cannot take).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

import torch

from .errors import CaptureError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

PROG = "python -m wsd_capture.bench"
#: The pipelines this benchmark builds (``sd15``/``sdxl``: full size, random weights).
KINDS: tuple[str, ...] = ("sd15", "sdxl", "tiny-sd15", "tiny-sdxl")
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
#: The stages timed, in the order they are reported.
STAGES: tuple[str, ...] = (
    "text_encoder_ms",
    "unet_step_ms",
    "scheduler_step_ms",
    "vae_decode_ms",
    "generation_ms",
)
PROMPT = "a photo of an astronaut riding a horse on the moon, highly detailed"
NEGATIVE_PROMPT = "blurry, low quality"
GUIDANCE_SCALE = 7.5
CFG_BATCH = 2


class Timing(TypedDict):
    """Summary of one stage's samples, in milliseconds."""

    median: float
    min: float
    max: float
    samples: list[float]


def summarize(samples_ms: Sequence[float]) -> Timing:
    """The median, min and max of ``samples_ms`` (milliseconds), and the samples themselves."""
    if not samples_ms:
        raise ValueError("no samples to summarize: time at least one run")
    samples = [float(s) for s in samples_ms]
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
    }


def _timing_event() -> torch.cuda.Event:
    return torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]


def measure_ms(
    work: Callable[[], object],
    *,
    device: torch.device,
    warmup: int,
    repeats: int,
    setup: Callable[[], object] | None = None,
) -> list[float]:
    """Run ``work`` ``warmup`` times untimed, then ``repeats`` times timed; its times in ms.

    ``setup`` (untimed) runs before every run, e.g. to put a stateful scheduler
    back where the timed step starts. On CUDA a run is timed with CUDA events
    after draining the queue; on the CPU with ``time.perf_counter``.
    """
    samples: list[float] = []
    for run in range(warmup + repeats):
        if setup is not None:
            setup()
        if device.type == "cuda":
            start, end = _timing_event(), _timing_event()
            stream = torch.cuda.current_stream(device)
            torch.cuda.synchronize(device)
            start.record(stream)
            work()
            end.record(stream)
            end.synchronize()
            ms = float(start.elapsed_time(end))
        else:
            began = time.perf_counter()
            work()
            ms = (time.perf_counter() - began) * 1e3
        if run >= warmup:
            samples.append(ms)
    return samples


@dataclass(frozen=True)
class Conditioning:
    """The UNet's conditioning for the guidance batch (negative first): ``hidden``
    [2, L, D]; SDXL's ``added`` ``text_embeds`` [2, P] and ``time_ids`` [2, 6]."""

    hidden: torch.Tensor
    added: dict[str, torch.Tensor] | None


class Generation:
    """The work of one generation, stage by stage, for one pipeline on one device at one
    precision: the methods are what the benchmark times (call them under
    ``torch.inference_mode()``). ``generate()`` gives the image diffusers'
    pipeline gives for :data:`PROMPT`, :data:`NEGATIVE_PROMPT`, ``steps`` and
    ``seed``.

    Construction moves the pipeline's models to ``device`` in the precision's
    dtype (see :func:`place`), checks ``height``/``width`` (default: native;
    :class:`CaptureError` when the model cannot take them) and tokenizes both
    prompts.
    """

    def __init__(
        self,
        pipe: DiffusionPipeline,
        *,
        device: torch.device,
        precision: str,
        height: int | None = None,
        width: int | None = None,
        steps: int,
        seed: int,
    ) -> None:
        from .capture import image_geometry

        geometry = image_geometry(pipe.unet, pipe.vae, height, width)
        self.pipe = pipe
        self.device = device
        self.dtype = PRECISIONS[precision]
        self.height, self.width = geometry.height, geometry.width
        self.latent_shape = geometry.latent_shape
        self.steps = steps
        self.seed = seed
        place(pipe, device, self.dtype)
        self.xl = getattr(pipe, "text_encoder_2", None) is not None
        tokenizers = [pipe.tokenizer, pipe.tokenizer_2] if self.xl else [pipe.tokenizer]
        # Per tokenizer: the negative prompt's ids, then the positive prompt's.
        self.ids = [
            [self._tokenize(t, NEGATIVE_PROMPT), self._tokenize(t, PROMPT)] for t in tokenizers
        ]
        # SDXL's micro-conditioning: original size, crop top-left, target size.
        time_ids = [self.height, self.width, 0, 0, self.height, self.width]
        self.time_ids = torch.tensor([time_ids] * CFG_BATCH, dtype=self.dtype, device=device)

    def _tokenize(self, tokenizer: Any, text: str) -> torch.Tensor:
        ids: torch.Tensor = tokenizer(
            text,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return ids.to(self.device)

    def encode(self) -> Conditioning:
        """Both prompts through the text encoder(s), as diffusers' ``encode_prompt``."""
        if not self.xl:
            hidden = [self.pipe.text_encoder(ids)[0] for ids in self.ids[0]]
            return Conditioning(torch.cat(hidden), None)
        halves, pooled = [], []
        for ids, ids_2 in zip(*self.ids, strict=True):
            first = self.pipe.text_encoder(ids, output_hidden_states=True)
            second = self.pipe.text_encoder_2(ids_2, output_hidden_states=True)
            halves.append(torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1))
            pooled.append(second[0])
        added = {"text_embeds": torch.cat(pooled), "time_ids": self.time_ids}
        return Conditioning(torch.cat(halves), added)

    def initial_latents(self) -> torch.Tensor:
        """Seeded Gaussian latents at the scheduler's initial scale (after ``set_timesteps``)."""
        generator = torch.Generator(self.device).manual_seed(self.seed)
        latents = torch.randn(
            self.latent_shape, generator=generator, device=self.device, dtype=self.dtype
        )
        scaled: torch.Tensor = latents * self.pipe.scheduler.init_noise_sigma
        return scaled

    def unet(self, sample: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """One UNet forward of the guidance batch ``sample`` [2, 4, h, w] at timestep ``t``."""
        out: torch.Tensor = self.pipe.unet(
            sample,
            t,
            encoder_hidden_states=cond.hidden,
            added_cond_kwargs=cond.added,
            return_dict=False,
        )[0]
        return out

    def guided_step(
        self, noise_pred: torch.Tensor, t: torch.Tensor, latents: torch.Tensor
    ) -> torch.Tensor:
        """Classifier-free guidance on the UNet's batch, then one scheduler step."""
        uncond, text = noise_pred.chunk(CFG_BATCH)
        guided = uncond + GUIDANCE_SCALE * (text - uncond)
        prev: torch.Tensor = self.pipe.scheduler.step(guided, t, latents, return_dict=False)[0]
        return prev

    def model_input(self, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet's guidance-batch input for ``latents`` at ``t``."""
        sample: torch.Tensor = self.pipe.scheduler.scale_model_input(
            torch.cat([latents] * CFG_BATCH), t
        )
        return sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """``vae.decode(latents / scaling_factor)`` in the VAE's dtype: the image, about
        in [-1, 1]."""
        vae = self.pipe.vae
        scaled = latents.to(vae.dtype) / vae.config.scaling_factor
        image: torch.Tensor = vae.decode(scaled, return_dict=False)[0]
        return image

    def generate(self) -> torch.Tensor:
        """A whole generation: the image [1, 3, H, W] in [0, 1]."""
        scheduler = self.pipe.scheduler
        cond = self.encode()
        scheduler.set_timesteps(self.steps, device=self.device)
        latents = self.initial_latents()
        for t in scheduler.timesteps:
            noise_pred = self.unet(self.model_input(latents, t), t, cond)
            latents = self.guided_step(noise_pred, t, latents)
        return (self.decode(latents) / 2 + 0.5).clamp(0, 1)

    def run_to_middle(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the scheduler up for a generation and run it (with a fixed noise
        prediction) up to its middle step; that step's timestep and latents."""
        scheduler = self.pipe.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        latents = self.initial_latents()
        noise_pred = torch.cat([latents] * CFG_BATCH)
        timesteps = scheduler.timesteps
        for t in timesteps[: len(timesteps) // 2]:
            self.model_input(latents, t)
            latents = self.guided_step(noise_pred, t, latents)
        t = timesteps[len(timesteps) // 2]
        self.model_input(latents, t)
        return t, latents


def _time_stages(
    gen: Generation, *, warmup: int, repeats: int
) -> tuple[dict[str, Timing], int | None]:
    """Every stage's timing, and the peak GPU memory of the generation runs (None on the CPU)."""
    device = gen.device
    timed: dict[str, list[float]] = {}

    def stage(name: str, work: Callable[[], object], **kw: Any) -> None:
        _say(f"  {name}")
        timed[name] = measure_ms(work, device=device, warmup=warmup, repeats=repeats, **kw)

    cond = gen.encode()
    t, latents = gen.run_to_middle()
    sample = gen.model_input(latents, t)
    noise_pred = gen.unet(sample, t, cond)
    stage("text_encoder_ms", gen.encode)
    stage("unet_step_ms", lambda: gen.unet(sample, t, cond))
    stage(
        "scheduler_step_ms",
        lambda: gen.guided_step(noise_pred, t, latents),
        setup=gen.run_to_middle,
    )
    stage("vae_decode_ms", lambda: gen.decode(latents))
    _say("  generation_ms")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed["generation_ms"] = measure_ms(
        gen.generate,
        device=device,
        warmup=min(warmup, 1),
        repeats=min(repeats, max(3, repeats // 3)),
    )
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    return {name: summarize(timed[name]) for name in STAGES}, peak


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the models


def _cpu_pipeline(kind: str, model_dir: Path | None, seed: int) -> DiffusionPipeline:
    """The pipeline of ``kind`` in fp32 on the CPU: built, or loaded from ``model_dir``."""
    if model_dir is not None:
        from .loading import load_sd15, load_sdxl

        return load_sdxl(model_dir) if kind == "sdxl" else load_sd15(model_dir)
    if kind == "tiny-sd15":
        from .presets import build_tiny_sd15

        return build_tiny_sd15()
    if kind == "tiny-sdxl":
        from .presets import build_tiny_sdxl

        return build_tiny_sdxl()
    from .architectures import build_random_pipeline

    return build_random_pipeline(kind, seed)


def place(pipe: DiffusionPipeline, device: torch.device, dtype: torch.dtype) -> None:
    """Move ``pipe``'s models to ``device`` in ``dtype`` (an SDXL VAE whose config says
    ``force_upcast`` in fp32 under fp16, as diffusers runs it), in eval mode, with
    diffusers' default SDPA attention everywhere (``AttnProcessor2_0``; ``sdpa``
    in the text encoders)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    xl = getattr(pipe, "text_encoder_2", None) is not None
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipe, name, None)
        if encoder is not None:
            encoder.set_attn_implementation("sdpa")
            encoder.to(device=device, dtype=dtype).eval()
    upcast = xl and dtype == torch.float16 and bool(getattr(pipe.vae.config, "force_upcast", True))
    for model, model_dtype in ((pipe.unet, dtype), (pipe.vae, torch.float32 if upcast else dtype)):
        model.set_attn_processor(AttnProcessor2_0())
        model.to(device=device, dtype=model_dtype).eval()


def _check_model_dir(kind: str, model_dir: Path) -> None:
    """Raise :class:`CaptureError` unless ``model_dir`` is a complete diffusers
    directory of ``kind`` (``sd15`` or ``sdxl``)."""
    from .loading import SD15_PIPELINE_CLASS, SDXL_PIPELINE_CLASS, check_source

    kinds = {SD15_PIPELINE_CLASS: "sd15", SDXL_PIPELINE_CLASS: "sdxl"}
    try:
        found = json.loads((model_dir / "model_index.json").read_text(encoding="utf-8"))
        pipeline = found.get("_class_name")
    except (OSError, ValueError, AttributeError):
        pipeline = None  # check_source names what is wrong
    if pipeline in kinds and kinds[pipeline] != kind:
        raise CaptureError(f"{model_dir} holds a {pipeline}: use --kind {kinds[pipeline]}")
    check_source(model_dir, kind)


def _check_size(kind: str, model_dir: Path | None, height: int | None, width: int | None) -> None:
    """Raise :class:`CaptureError` when the model cannot take ``height`` x ``width``,
    before anything large is built or loaded."""
    from .capture import check_image_size, image_geometry

    if model_dir is not None:
        check_image_size(model_dir, height, width)
    elif kind in ("sd15", "sdxl"):
        from .architectures import sd15_configs, sdxl_configs

        configs = sd15_configs() if kind == "sd15" else sdxl_configs()
        unet, vae = (SimpleNamespace(config=SimpleNamespace(**configs[p])) for p in ("unet", "vae"))
        image_geometry(unet, vae, height, width)
    else:
        pipe = _cpu_pipeline(kind, None, 0)
        image_geometry(pipe.unet, pipe.vae, height, width)


# ---------------------------------------------------------------- the benchmark


def _environment(device: torch.device) -> dict[str, Any]:
    import diffusers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "device": name,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda,
        "tf32": {
            "matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn": bool(torch.backends.cudnn.allow_tf32),
        },
    }


def run_benchmark(
    kind: str,
    *,
    device: str | torch.device = "cuda",
    precisions: Sequence[str] = ("fp32", "fp16"),
    height: int | None = None,
    width: int | None = None,
    steps: int = 20,
    warmup: int = 3,
    repeats: int = 10,
    seed: int = 0,
    model_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Time every stage of ``kind`` at each precision: one result record per precision.

    ``height``/``width`` default to the model's native size. ``model_dir``
    loads a diffusers directory of ``kind`` (``sd15`` or ``sdxl``) instead of
    building the architecture. Raises :class:`CaptureError` for a size the
    model cannot take (after building it; the command checks before) or a model
    directory that cannot be loaded.
    """
    dev = torch.device(device)
    source = Path(model_dir) if model_dir is not None else None
    results = []
    for precision in precisions:
        _say(f"{kind} {precision}: building the pipeline")
        pipe = _cpu_pipeline(kind, source, seed)
        gen = Generation(
            pipe,
            device=dev,
            precision=precision,
            height=height,
            width=width,
            steps=steps,
            seed=seed,
        )
        _say(f"{kind} {precision} {gen.height}x{gen.width}: timing")
        with torch.inference_mode():
            stages, peak = _time_stages(gen, warmup=warmup, repeats=repeats)
        results.append(
            {
                "runtime": "pytorch",
                "tool": PROG,
                "kind": kind,
                "height": gen.height,
                "width": gen.width,
                "steps": steps,
                "batch": CFG_BATCH,
                "precision": precision,
                "attention": "sdpa",
                **_environment(dev),
                "scheduler": type(pipe.scheduler).__name__,
                "warmup": warmup,
                "repeats": repeats,
                "stages": stages,
                "peak_gpu_bytes": peak,
            }
        )
        del gen, pipe
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a readable table per precision (milliseconds)."""
    blocks = []
    for r in results:
        tf32 = r["tf32"]
        lines = [
            f"{r['kind']} {r['height']}x{r['width']}, {r['steps']} steps, batch {r['batch']}, "
            f"{r['precision']}, {r['attention']}, {r['scheduler']}",
            f"{r['device']}: torch {r['torch']}, CUDA {r['cuda']}, diffusers {r['diffusers']}, "
            f"TF32 matmul {tf32['matmul']}, cudnn {tf32['cudnn']}",
            f"{'stage':<18} {'median':>10} {'min':>10} {'max':>10}  runs",
        ]
        for name in STAGES:
            s = r["stages"][name]
            lines.append(
                f"{name:<18} {s['median']:>10.3f} {s['min']:>10.3f} {s['max']:>10.3f}  "
                f"{len(s['samples'])}"
            )
        peak = r["peak_gpu_bytes"]
        if peak is not None:
            lines.append(f"{'peak GPU memory':<18} {peak / 2**30:>10.2f} GiB")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------- the command


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message}; see `{PROG} --help`\n")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: use cuda, cuda:N or cpu")
    return device


def build_parser() -> argparse.ArgumentParser:
    """The parser ``main`` uses; tests/test_docs.py checks the documented commands with it."""
    parser = _Parser(
        prog=PROG,
        description="Time diffusers on PyTorch stage by stage, as the WebGPU pipeline runs: "
        "text encoders, one UNet step (CFG batch 2), one scheduler step, VAE decode, and a "
        "whole generation.",
        epilog="Writes a table to stdout; --json also writes the records (one per precision).",
    )
    parser.add_argument(
        "--kind",
        required=True,
        choices=KINDS,
        help="sd15/sdxl: the published architectures with random weights; tiny-*: the presets",
    )
    parser.add_argument("--height", type=_count(1), help="image height (default: native)")
    parser.add_argument("--width", type=_count(1), help="image width (default: native)")
    parser.add_argument("--steps", type=_count(1), default=20, help="denoising steps (20)")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=list(PRECISIONS),
        default=["fp32", "fp16"],
        help="one record each, in this order (fp32 fp16)",
    )
    parser.add_argument(
        "--device",
        type=_device,
        default=torch.device("cuda"),
        help="cuda, cuda:N or cpu (cuda)",
    )
    parser.add_argument("--warmup", type=_count(0), default=3, help="untimed runs per stage (3)")
    parser.add_argument("--repeats", type=_count(1), default=10, help="timed runs per stage (10)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights and the latents (0)"
    )
    parser.add_argument("--json", metavar="OUT", type=Path, help="also write the records here")
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        type=Path,
        help="load this diffusers directory (of --kind sd15 or sdxl) instead of random weights",
    )
    return parser


def _cuda_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot be used, or None."""
    if device.type != "cuda":
        return None
    if not torch.cuda.is_available():
        why = (
            f"torch {torch.__version__} is built without CUDA"
            if torch.version.cuda is None
            else "torch sees no CUDA device"
        )
        return (
            f"CUDA is not available: {why}; run on a machine with an NVIDIA GPU or use --device cpu"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        return f"CUDA device {device.index} does not exist: torch sees {torch.cuda.device_count()}"
    return None


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wsd_capture.bench``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model_dir is not None and args.kind not in ("sd15", "sdxl"):
        parser.error("--model-dir needs --kind sd15 or --kind sdxl")
    problem = _cuda_problem(args.device)
    if problem is not None:
        return _fail(problem)
    from .quiet import quiet_libraries

    quiet_libraries()
    if args.model_dir is not None:
        try:
            _check_model_dir(args.kind, args.model_dir)
        except CaptureError as e:
            return _fail(str(e))
    try:
        _check_size(args.kind, args.model_dir, args.height, args.width)
    except CaptureError as e:
        parser.error(str(e))
    try:
        results = run_benchmark(
            args.kind,
            device=args.device,
            precisions=list(dict.fromkeys(args.precision)),
            height=args.height,
            width=args.width,
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            seed=args.seed,
            model_dir=args.model_dir,
        )
    except CaptureError as e:
        return _fail(str(e))
    print(format_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
