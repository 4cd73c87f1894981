"""Every scheduler's update on the GPU (the build's compiled combineK kernels, Node +
Dawn) against diffusers' scheduler.step, fed the same model outputs at every step."""

from __future__ import annotations

import inspect
import json
import subprocess
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import pytest
import torch

from wsd_web.server import STATIC_DIR

pytestmark = pytest.mark.dawn

DRIVER = STATIC_DIR.parents[2] / "tests" / "js" / "scheduler_gpu_driver.mjs"
STEPS = {"lcm": 4}


Classes = dict[str, tuple[str, dict[str, Any]]]


def diffusers_run(
    classes: Classes, name: str, config: dict[str, Any], steps: int, seed: int, shape: list[int]
) -> tuple[list[list[float]], list[int], np.ndarray]:
    """Model outputs for every step, the timesteps, and diffusers' final sample."""
    class_name, overrides = classes[name]
    scheduler = getattr(diffusers, class_name).from_config(config, **overrides)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(shape, generator=generator) * scheduler.init_noise_sigma
    rng = np.random.default_rng(seed)
    # As diffusers' pipelines do (prepare_extra_step_kwargs): a generator where step takes one.
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    extra = {"generator": generator} if takes_generator else {}
    outputs = []
    for t in scheduler.timesteps:
        scheduler.scale_model_input(sample, t)
        output = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        outputs.append(output.flatten().tolist())
        sample = scheduler.step(output, t, sample, **extra).prev_sample
    return outputs, [int(t) for t in scheduler.timesteps], sample.numpy()


def test_compiled_updates_match_diffusers_step(
    tiny_sd15_build: Path, tmp_path: Path, scheduler_classes: Classes
) -> None:
    manifest = json.loads((tiny_sd15_build / "manifest.json").read_text())
    config = manifest["scheduler"]["config"]
    shape = manifest["latent"]["shape"]
    cases, expected = [], []
    for seed, name in enumerate(scheduler_classes):
        steps = STEPS.get(name, 10)
        outputs, timesteps, final = diffusers_run(
            scheduler_classes, name, config, steps, seed, shape
        )
        cases.append(
            {
                "scheduler": name,
                "config": config,
                "steps": steps,
                "seed": seed,
                "modelOutputs": outputs,
            }
        )
        expected.append((name, timesteps, final))
    fixture = tmp_path / "fixture.json"
    fixture.write_text(json.dumps({"cases": cases}))
    result = subprocess.run(
        ["node", str(DRIVER), str(tiny_sd15_build), str(fixture)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for (name, timesteps, final), got in zip(expected, json.loads(result.stdout), strict=True):
        assert [int(t) for t in got["timesteps"]] == timesteps, name
        sample = np.asarray(got["sample"], np.float32).reshape(final.shape)
        scale = float(np.abs(final).max())
        assert np.abs(sample - final).max() <= 1e-4 * scale, name
