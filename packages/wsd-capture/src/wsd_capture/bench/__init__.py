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

The modules, one job each: `timing` (how a stage is timed and summarized),
`generation` (the work of one generation, stage by stage), `models` (the
pipelines the benchmark builds or loads, and their checks), `runner` (every
stage of every precision, and the table) and `cli` (the command).
"""

from __future__ import annotations

from .generation import NEGATIVE_PROMPT, PRECISIONS, PROMPT, Conditioning, Generation, place
from .models import KINDS
from .runner import PROG, STAGES, format_table, run_benchmark
from .timing import Timing, measure_ms, summarize

__all__ = [
    "KINDS",
    "NEGATIVE_PROMPT",
    "PRECISIONS",
    "PROG",
    "PROMPT",
    "STAGES",
    "Conditioning",
    "Generation",
    "Timing",
    "format_table",
    "measure_ms",
    "place",
    "run_benchmark",
    "summarize",
]
