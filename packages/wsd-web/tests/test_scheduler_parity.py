"""The JS schedulers step exactly like diffusers' own.

diffusers itself makes the fixtures: for each scheduler name and model config it
builds `Class.from_config(config, **overrides)` as the JS registry claims to,
records the timesteps for every step count 1..150 and, for a few step counts, the
model input and the sample after every `step` on seeded random model outputs.
The JS schedulers then run on the same inputs (tests/js/scheduler_driver.mjs,
float32 tensors on the CPU) and must give identical timesteps, the same resolved
config and init_noise_sigma, and model inputs and samples within 1e-5 of the
sample's scale.

The newer schedulers' runs start as a pipeline does: one
`torch.Generator().manual_seed(seed)` draws the initial latents (scaled by
init_noise_sigma) and is then passed to every `step`; the JS side draws from
its own bit-identical TorchGenerator, so the noise that Euler ancestral and LCM
inject must line up draw for draw, and both streams must end at the same place.

Image-to-image runs as StableDiffusionImg2ImgPipeline does (its own
get_timesteps cuts the timesteps for a strength and sets the scheduler's begin
index): the cut timesteps must be identical; the image noised by `add_noise` at
the first of them (and again after every step, as inpainting does) within 1e-6;
the samples of the steps that follow within 1e-5, with the noise stream aligned.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

DRIVER = Path(__file__).parent / "js" / "scheduler_driver.mjs"

# diffusers converts torch tensors with np.array(..., copy=False) under numpy 2.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# What each registry name means in diffusers (see schedulers/index.js).
REGISTRY: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "dpmpp-2m": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "dpmpp-2m-karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "pndm": (PNDMScheduler, {}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "lcm": (LCMScheduler, {}),
}

# Their runs draw the initial latents and the step noise from one generator.
SEEDED = {"ddim", "euler", "euler-a", "lcm"}

# Stable Diffusion 1.5's scheduler_config.json.
SD15: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}

CONFIGS: dict[str, dict[str, Any]] = {
    "sd15": SD15,
    # What a pipeline hands over: every PNDM key filled in, the ones SD 1.5 never
    # set listed in _use_default_values (so DPM keeps its own "linspace" spacing).
    "sd15-loaded": dict(PNDMScheduler.from_config(SD15).config),
    # Stable Diffusion 2.1 (768): a DDIM config, v-prediction.
    "sd21-v": {
        **SD15,
        "_class_name": "DDIMScheduler",
        "prediction_type": "v_prediction",
    },
    "trailing": {**SD15, "timestep_spacing": "trailing"},
    "linspace": {**SD15, "timestep_spacing": "linspace"},
    "leading": {**SD15, "timestep_spacing": "leading"},
    "cosine-alpha-one": {
        "_class_name": "PNDMScheduler",
        "beta_schedule": "squaredcos_cap_v2",
        "set_alpha_to_one": True,
        "skip_prk_steps": True,
    },
    # PNDM's defaults: linear betas and the Runge-Kutta warm-up.
    "linear-prk": {"_class_name": "PNDMScheduler"},
    "v-prk-trailing": {
        "_class_name": "PNDMScheduler",
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
    },
    "trained-betas": {
        "_class_name": "PNDMScheduler",
        "trained_betas": [float(b) for b in np.linspace(0.0002, 0.015, 1000)],
        "skip_prk_steps": True,
    },
    "dpm-sigma-min-heun": {
        **SD15,
        "_class_name": "DPMSolverMultistepScheduler",
        "final_sigmas_type": "sigma_min",
        "solver_type": "heun",
        "lower_order_final": False,
    },
    "dpm-sigma-min-midpoint": {
        **SD15,
        "_class_name": "DPMSolverMultistepScheduler",
        "final_sigmas_type": "sigma_min",
        "lower_order_final": False,
    },
    "dpm-euler-final-x0": {
        **SD15,
        "_class_name": "DPMSolverMultistepScheduler",
        "final_sigmas_type": "sigma_min",
        "euler_at_final": True,
        "prediction_type": "sample",
    },
    # DDIM's own defaults: linear betas, clip_sample (to [-1, 1]), set_alpha_to_one.
    "ddim-defaults": {"_class_name": "DDIMScheduler"},
    "clip-sample-linspace": {
        **SD15,
        "_class_name": "DDIMScheduler",
        "prediction_type": "sample",
        "clip_sample": True,
        "clip_sample_range": 0.75,
        "timestep_spacing": "linspace",
    },
    "euler-karras": {**SD15, "_class_name": "EulerDiscreteScheduler", "use_karras_sigmas": True},
    "euler-karras-v-trailing": {
        **SD15,
        "_class_name": "EulerDiscreteScheduler",
        "use_karras_sigmas": True,
        "prediction_type": "v_prediction",
        "timestep_spacing": "trailing",
    },
    "euler-karras-bounded": {
        **SD15,
        "_class_name": "EulerDiscreteScheduler",
        "use_karras_sigmas": True,
        "sigma_min": 0.1,
        "sigma_max": 10.0,
        "timestep_spacing": "leading",
    },
    "euler-sigma-min-x0": {
        **SD15,
        "_class_name": "EulerDiscreteScheduler",
        "final_sigmas_type": "sigma_min",
        "prediction_type": "sample",
    },
    # An LCM model's own config (SimianLuo/LCM_Dreamshaper_v7).
    "lcm-dreamshaper": {
        "_class_name": "LCMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "original_inference_steps": 50,
        "prediction_type": "epsilon",
        "set_alpha_to_one": True,
        "steps_offset": 1,
        "timestep_scaling": 10.0,
        "timestep_spacing": "leading",
        "trained_betas": None,
    },
    "lcm-defaults": {"_class_name": "LCMScheduler"},
    "lcm-orig-150-v": {
        "_class_name": "LCMScheduler",
        "original_inference_steps": 150,
        "prediction_type": "v_prediction",
    },
    "lcm-clip-x0": {
        "_class_name": "LCMScheduler",
        "clip_sample": True,
        "clip_sample_range": 0.5,
        "prediction_type": "sample",
        "timestep_scaling": 3.0,
    },
}

CASES: list[tuple[str, str]] = [
    *[
        ("pndm", c)
        for c in [
            "sd15",
            "sd21-v",
            "trailing",
            "linspace",
            "cosine-alpha-one",
            "linear-prk",
            "v-prk-trailing",
            "trained-betas",
        ]
    ],
    *[
        ("dpmpp-2m", c)
        for c in [
            "sd15",
            "sd15-loaded",
            "sd21-v",
            "trailing",
            "leading",
            "cosine-alpha-one",
            "trained-betas",
            "dpm-sigma-min-heun",
            "dpm-euler-final-x0",
        ]
    ],
    *[
        ("dpmpp-2m-karras", c)
        # Not heun with sigma_min: Karras sigmas end on sigma_min, so the last step
        # has h = 0 and diffusers' heun weight is 0/0 (NaN).
        for c in ["sd15", "sd21-v", "cosine-alpha-one", "linear-prk", "dpm-sigma-min-midpoint"]
    ],
    *[
        ("ddim", c)
        for c in [
            "sd15",
            "sd21-v",
            "trailing",
            "linspace",
            "ddim-defaults",
            "clip-sample-linspace",
            "cosine-alpha-one",
            "trained-betas",
        ]
    ],
    *[
        ("euler", c)
        for c in [
            "sd15",
            "sd15-loaded",
            "sd21-v",
            "trailing",
            "leading",
            "euler-karras",
            "euler-karras-v-trailing",
            "euler-karras-bounded",
            "euler-sigma-min-x0",
            "trained-betas",
        ]
    ],
    *[
        ("euler-a", c)
        # Not squaredcos_cap_v2: its largest sigma is 2e4, and diffusers' float32
        # sigma_down = sqrt(sigma_next^2 - sigma_up^2) takes the root of a negative
        # rounding error there (NaN); the JS, in float64, steps on.
        for c in ["sd15", "sd21-v", "trailing", "leading", "linspace", "trained-betas"]
    ],
    *[
        ("lcm", c)
        for c in ["lcm-dreamshaper", "lcm-defaults", "sd15", "lcm-orig-150-v", "lcm-clip-x0"]
    ],
]

STEP_COUNTS = [1, 2, 3, 4, 7, 20, 25, 50, 150]
SEEDED_STEP_COUNTS = [1, 2, 4, 8, 25, 50, 150]
SHAPE = (1, 4, 4, 4)
TOLERANCE = 1e-5
# Image-to-image: strengths (int(100 * 0.29) is 28, a float rounding) at step counts,
# and the runs, (steps, strength), for which every step is compared.
STRENGTHS = [0.05, 0.29, 0.3, 0.5, 0.8, 1.0]
STRENGTH_STEP_COUNTS = [1, 2, 3, 4, 5, 7, 10, 13, 20, 25, 33, 50, 61, 100, 150]
IMG2IMG_RUNS = [(3, 1.0), (4, 0.5), (10, 0.3), (10, 0.05), (25, 0.8), (50, 0.5)]
NOISE_TOLERANCE = 1e-6


def _case_id(name: str, config: str) -> str:
    return f"{name}/{config}"


def _same_timesteps(case: str, js: list[float] | None, ref: list[float] | None) -> bool:
    """Identical, except Euler's fractional Karras timesteps: diffusers interpolates
    them in numpy's float32 log of the sigma table, a SIMD log that is not correctly
    rounded (nor the same on every CPU), so they may differ by ~1e-5 of a timestep."""
    if js is None or ref is None or len(js) != len(ref) or not case.startswith("euler/"):
        return js == ref
    return bool(np.allclose(js, ref, rtol=1e-6, atol=1e-4))


def _full_run(
    scheduler: Any, outputs: np.ndarray, x: torch.Tensor, step_kwargs: dict[str, Any]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every step's model input and sample, from ``x`` through all the timesteps."""
    inputs: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    for t, output in zip(scheduler.timesteps, outputs, strict=True):
        inputs.append(scheduler.scale_model_input(x, t).numpy().ravel())
        x = scheduler.step(torch.from_numpy(output), t, x, **step_kwargs).prev_sample
        samples.append(x.numpy().ravel())
    return inputs, samples


def _reference(name: str, config: str, seed: int) -> dict[str, Any]:
    """The fixture for one case, made by diffusers, and its expected outputs."""
    cls, overrides = REGISTRY[name]
    scheduler = cls.from_config(CONFIGS[config], **overrides)
    sweep = {str(steps): _timesteps(scheduler, steps) for steps in range(1, 151)}
    rng = np.random.default_rng(seed)
    runs: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    seeded = name in SEEDED
    for steps in SEEDED_STEP_COUNTS if seeded else STEP_COUNTS:
        timesteps = sweep[str(steps)]
        # diffusers' DPM finds its first step index by looking the timestep up and
        # takes the second match when it repeats (Karras sigmas on squaredcos_cap_v2
        # start 998, 998, ...), then runs past its last sigma: no reference there.
        if timesteps is None or timesteps.count(timesteps[0]) > 1:
            continue
        scheduler.set_timesteps(steps)
        outputs = rng.standard_normal((len(scheduler.timesteps), *SHAPE), dtype=np.float32)
        run: dict[str, Any] = {
            "steps": steps,
            "shape": list(SHAPE),
            "model_outputs": outputs.reshape(len(outputs), -1).tolist(),
        }
        init_noise_sigma = float(scheduler.init_noise_sigma)
        step_kwargs: dict[str, Any] = {}
        if seeded:
            # As a pipeline: the first draw is the initial noise, the rest go to step().
            run["seed"] = seed * 1000 + steps
            generator = torch.Generator().manual_seed(run["seed"])
            x = torch.randn(SHAPE, generator=generator) * scheduler.init_noise_sigma
            step_kwargs["generator"] = generator
        else:
            x = torch.from_numpy(rng.standard_normal(SHAPE, dtype=np.float32))
            run["sample"] = x.numpy().ravel().tolist()
        runs.append(run)
        initial = x.numpy().ravel()
        inputs, samples = _full_run(scheduler, outputs, x, step_kwargs)
        next_draw = torch.randn(SHAPE, generator=generator).ravel().tolist() if seeded else None
        expected.append(
            {
                "timesteps": scheduler.timesteps.tolist(),
                "init_noise_sigma": init_noise_sigma,
                "sample": initial,
                "inputs": inputs,
                "samples": samples,
                "next_draw": next_draw,
            }
        )
    init_keys = set(inspect.signature(cls.__init__).parameters) - {"self"}
    resolved = {k: v for k, v in scheduler.config.items() if k in init_keys}
    img2img_case, img2img_expected = _img2img_reference(scheduler, seed)
    case = {
        "id": _case_id(name, config),
        "scheduler": name,
        "config": CONFIGS[config],
        "sweep": list(range(1, 151)),
        "runs": runs,
        **img2img_case,
    }
    return {
        "case": case,
        "sweep": sweep,
        "expected": expected,
        "config": resolved,
        **img2img_expected,
    }


def _img2img_reference(scheduler: Any, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The image-to-image part of a case's fixture, and what diffusers gives."""
    made = [
        run
        for k, (steps, strength) in enumerate(IMG2IMG_RUNS)
        if (run := _img2img_run(scheduler, steps, strength, seed * 1000 + k)) is not None
    ]
    case = {
        "strengths": STRENGTHS,
        "strength_sweep": STRENGTH_STEP_COUNTS,
        "img2img": [run for run, _ in made],
    }
    strength_sweep = {
        str(steps): [_timesteps(scheduler, steps, strength) for strength in STRENGTHS]
        for steps in STRENGTH_STEP_COUNTS
    }
    return case, {"strength_sweep": strength_sweep, "img2img": [want for _, want in made]}


def _timesteps(scheduler: Any, steps: int, strength: float | None = None) -> list[float] | None:
    """The timesteps of `steps` steps, cut for a strength as the img2img pipeline's
    get_timesteps does (which also sets the scheduler's begin index); None where
    diffusers refuses the step count (PNDM's Runge-Kutta warm-up needs 4 steps or
    more; LCM at most original_inference_steps)."""
    try:
        scheduler.set_timesteps(steps)
    except ValueError:
        return None
    if strength is None:
        return list(scheduler.timesteps.tolist())
    pipeline = SimpleNamespace(scheduler=scheduler)
    timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(pipeline, steps, strength, None)
    return list(timesteps.tolist())


def _img2img_run(
    scheduler: Any, steps: int, strength: float, seed: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """An image-to-image run as the pipeline makes it, and what diffusers gives;
    None where it has no step to run. One generator draws the noise that
    `add_noise` adds and is then passed to every `step` that takes it."""
    timesteps = _timesteps(scheduler, steps, strength)
    if not timesteps:
        return None
    cut = scheduler.timesteps[-len(timesteps) :]
    rng = np.random.default_rng(seed)
    outputs = rng.standard_normal((len(cut), *SHAPE), dtype=np.float32)
    original = torch.from_numpy(rng.standard_normal(SHAPE, dtype=np.float32))
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(SHAPE, generator=generator)
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    step_kwargs: dict[str, Any] = {"generator": generator} if takes_generator else {}
    x = scheduler.add_noise(original, noise, cut[:1])
    noised, inputs, samples = [x.numpy().ravel()], [], []
    for i, (t, output) in enumerate(zip(cut, outputs, strict=True)):
        inputs.append(scheduler.scale_model_input(x, t).numpy().ravel())
        x = scheduler.step(torch.from_numpy(output), t, x, **step_kwargs).prev_sample
        samples.append(x.numpy().ravel())
        if i + 1 < len(cut):  # as inpainting does: the image noised to the next step's level
            noised.append(scheduler.add_noise(original, noise, cut[i + 1 : i + 2]).numpy().ravel())
    want = {
        "timesteps": timesteps,
        "noised": noised,
        "inputs": inputs,
        "samples": samples,
        "next_draw": torch.randn(SHAPE, generator=generator).ravel().tolist(),
    }
    run = {
        "steps": steps,
        "strength": strength,
        "seed": seed,
        "shape": list(SHAPE),
        "original": original.numpy().ravel().tolist(),
        "model_outputs": outputs.reshape(len(outputs), -1).tolist(),
    }
    return run, want


@pytest.fixture(scope="module")
def parity(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Reference and JS results for every case, by case id."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not on PATH; install Node.js >= 20 to run the JS scheduler parity test"
        )
    refs = [_reference(name, config, seed) for seed, (name, config) in enumerate(CASES)]
    tmp = tmp_path_factory.mktemp("schedulers")
    cases_path, results_path = tmp / "cases.json", tmp / "results.json"
    cases_path.write_text(json.dumps({"cases": [r["case"] for r in refs]}))
    subprocess.run([node, str(DRIVER), str(cases_path), str(results_path)], check=True, timeout=120)
    results = {r["id"]: r for r in json.loads(results_path.read_text())["cases"]}
    return {r["case"]["id"]: (r, results[r["case"]["id"]]) for r in refs}


CASE_IDS = [_case_id(*c) for c in CASES]


@pytest.mark.parametrize("case", CASE_IDS)
def test_the_config_resolves_as_from_config_does(parity: Any, case: str) -> None:
    ref, js = parity[case]
    assert js["config"] == ref["config"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_timesteps_are_identical_for_every_step_count(parity: Any, case: str) -> None:
    ref, js = parity[case]
    # Where diffusers schedules a timestep outside the training range (numpy's float
    # arange, "trailing" spacing), PNDM would index alphas_cumprod[-1]: the JS refuses.
    refused = [n for n, ts in ref["sweep"].items() if js["sweep"][n] is None and ts is not None]
    assert all(min(ref["sweep"][n]) < 0 for n in refused), f"refused step counts {refused}"
    assert not refused or case.startswith(("pndm/", "ddim/"))
    wrong = [
        n
        for n in ref["sweep"]
        if not _same_timesteps(case, js["sweep"][n], ref["sweep"][n]) and n not in refused
    ]
    assert not wrong, f"step counts {wrong}: js {js['sweep'][wrong[0]]} != {ref['sweep'][wrong[0]]}"


def _relative_error(want: np.ndarray, have: list[float]) -> float:
    scale = max(1.0, float(np.abs(want).max()))
    return float(np.abs(np.asarray(have) - want).max()) / scale


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_sample_matches(parity: Any, case: str) -> None:
    ref, js = parity[case]
    assert ref["expected"], "no run to compare"
    for expected, got in zip(ref["expected"], js["runs"], strict=True):
        assert _same_timesteps(case, got["timesteps"], expected["timesteps"])
        # The training betas are float32 torch.linspace values, which can differ by an
        # ulp from the nearest float32 (see common.js): float32 sigmas may differ too.
        assert got["init_noise_sigma"] == pytest.approx(expected["init_noise_sigma"], rel=1e-6)
        assert _relative_error(expected["sample"], got["sample"]) <= 1e-6
        assert len(got["samples"]) == len(expected["samples"])
        steps = zip(
            expected["inputs"], got["inputs"], expected["samples"], got["samples"], strict=True
        )
        for i, (want_in, have_in, want, have) in enumerate(steps):
            err = _relative_error(want_in, have_in)
            assert err <= TOLERANCE, (
                f"{got['steps']} steps, model input {i}: relative error {err:.3g}"
            )
            err = _relative_error(want, have)
            assert err <= TOLERANCE, (
                f"{got['steps']} steps, after step {i}: relative error {err:.3g}"
            )


@pytest.mark.parametrize("case", [c for c in CASE_IDS if c.split("/")[0] in SEEDED])
def test_the_noise_stream_stays_aligned(parity: Any, case: str) -> None:
    ref, js = parity[case]
    for expected, got in zip(ref["expected"], js["runs"], strict=True):
        draws = {"euler-a": got["steps"], "lcm": got["steps"] - 1}.get(case.split("/")[0], 0)
        assert got["noises"] == draws
        assert got["next_draw"] == expected["next_draw"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_timesteps_for_a_strength_are_the_img2img_pipelines(parity: Any, case: str) -> None:
    ref, js = parity[case]
    wrong = []
    for n, cuts in ref["strength_sweep"].items():
        if js["sweep"][n] is None:  # refused whatever the strength (see above)
            assert all(have is None for have in js["strength_sweep"][n])
            continue
        for strength, want, have in zip(STRENGTHS, cuts, js["strength_sweep"][n], strict=True):
            # An empty cut (no step left): diffusers noises an empty batch, the JS refuses.
            if (have is None) != (not want) or (want and not _same_timesteps(case, have, want)):
                wrong.append(f"{n} steps at strength {strength}: js {have} != {want}")
    assert not wrong, "\n".join(wrong)


def _img2img_runs(parity: Any, case: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    ref, js = parity[case]
    assert ref["img2img"], "no image-to-image run to compare"
    return list(zip(ref["img2img"], js["img2img"], strict=True))


@pytest.mark.parametrize("case", CASE_IDS)
def test_add_noise_matches(parity: Any, case: str) -> None:
    for want, have in _img2img_runs(parity, case):
        assert _same_timesteps(case, have["timesteps"], want["timesteps"])
        assert len(have["noised"]) == len(want["noised"])
        for i, (expected, got) in enumerate(zip(want["noised"], have["noised"], strict=True)):
            err = _relative_error(expected, got)
            where = f"{have['steps']} steps at strength {have['strength']}, after step {i - 1}"
            assert err <= NOISE_TOLERANCE, f"{where}: relative error {err:.3g}"


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_sample_after_the_cut_matches(parity: Any, case: str) -> None:
    for want, have in _img2img_runs(parity, case):
        where = f"{have['steps']} steps at strength {have['strength']}"
        steps = zip(want["inputs"], have["inputs"], want["samples"], have["samples"], strict=True)
        for i, (want_in, have_in, want_out, have_out) in enumerate(steps):
            err = max(_relative_error(want_in, have_in), _relative_error(want_out, have_out))
            assert err <= TOLERANCE, f"{where}, step {i}: relative error {err:.3g}"
        assert have["next_draw"] == want["next_draw"], f"{where}: the noise stream moved apart"
