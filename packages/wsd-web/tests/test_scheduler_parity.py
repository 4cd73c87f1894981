"""The JS schedulers step exactly like diffusers' own.

diffusers itself makes the fixtures: for each scheduler name and model config it
builds `Class.from_config(config, **overrides)` as the JS registry claims to,
records the timesteps for every step count 1..150 and, for a few step counts, the
sample after every `step` on seeded random model outputs. The JS schedulers then
run on the same inputs (tests/js/scheduler_driver.mjs, float32 tensors on the
CPU) and must give identical timesteps, the same resolved config and samples
within 1e-5 of the sample's scale.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler

DRIVER = Path(__file__).parent / "js" / "scheduler_driver.mjs"

# diffusers converts torch tensors with np.array(..., copy=False) under numpy 2.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# What each registry name means in diffusers (see schedulers/index.js).
REGISTRY: dict[str, tuple[type[DPMSolverMultistepScheduler | PNDMScheduler], dict[str, Any]]] = {
    "dpmpp-2m": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False},
    ),
    "dpmpp-2m-karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "pndm": (PNDMScheduler, {}),
}

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
]

STEP_COUNTS = [1, 2, 3, 4, 7, 20, 25, 50, 150]
SHAPE = (1, 4, 4, 4)
TOLERANCE = 1e-5


def _case_id(name: str, config: str) -> str:
    return f"{name}/{config}"


def _reference(name: str, config: str, seed: int) -> dict[str, Any]:
    """The fixture for one case, made by diffusers, and its expected outputs."""
    cls, overrides = REGISTRY[name]
    scheduler = cls.from_config(CONFIGS[config], **overrides)
    sweep: dict[str, list[int] | None] = {}
    for steps in range(1, 151):
        try:
            scheduler.set_timesteps(steps)
            sweep[str(steps)] = scheduler.timesteps.tolist()
        except ValueError:  # PNDM's Runge-Kutta warm-up needs 4 steps or more
            sweep[str(steps)] = None
    rng = np.random.default_rng(seed)
    runs: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for steps in STEP_COUNTS:
        timesteps = sweep[str(steps)]
        # diffusers' DPM finds its first step index by looking the timestep up and
        # takes the second match when it repeats (Karras sigmas on squaredcos_cap_v2
        # start 998, 998, ...), then runs past its last sigma: no reference there.
        if timesteps is None or timesteps.count(timesteps[0]) > 1:
            continue
        scheduler.set_timesteps(steps)
        sample = rng.standard_normal(SHAPE, dtype=np.float32)
        outputs = rng.standard_normal((len(scheduler.timesteps), *SHAPE), dtype=np.float32)
        runs.append(
            {
                "steps": steps,
                "sample": sample.ravel().tolist(),
                "model_outputs": outputs.reshape(len(outputs), -1).tolist(),
            }
        )
        x = torch.from_numpy(sample)
        samples: list[np.ndarray] = []
        for t, output in zip(scheduler.timesteps, outputs, strict=True):
            x = scheduler.step(torch.from_numpy(output), t, x).prev_sample
            samples.append(x.numpy().ravel())
        expected.append({"timesteps": scheduler.timesteps.tolist(), "samples": samples})
    init_keys = set(inspect.signature(cls.__init__).parameters) - {"self"}
    resolved = {k: v for k, v in scheduler.config.items() if k in init_keys}
    case = {
        "id": _case_id(name, config),
        "scheduler": name,
        "config": CONFIGS[config],
        "sweep": list(range(1, 151)),
        "runs": runs,
    }
    return {"case": case, "sweep": sweep, "expected": expected, "config": resolved}


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
    assert not refused or case.startswith("pndm/")
    wrong = [n for n in ref["sweep"] if js["sweep"][n] != ref["sweep"][n] and n not in refused]
    assert not wrong, f"step counts {wrong}: js {js['sweep'][wrong[0]]} != {ref['sweep'][wrong[0]]}"


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_sample_matches(parity: Any, case: str) -> None:
    ref, js = parity[case]
    for expected, got in zip(ref["expected"], js["runs"], strict=True):
        assert got["timesteps"] == expected["timesteps"]
        assert len(got["samples"]) == len(expected["samples"])
        for i, (want, have) in enumerate(zip(expected["samples"], got["samples"], strict=True)):
            scale = max(1.0, float(np.abs(want).max()))
            err = float(np.abs(np.asarray(have) - want).max()) / scale
            assert err <= TOLERANCE, (
                f"{got['steps']} steps, after step {i}: relative error {err:.3g}"
            )
