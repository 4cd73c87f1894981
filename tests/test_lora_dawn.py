"""LoRA in Node through Dawn (the page's JS: lora.js, the build's merge
functions), on the compiled tiny presets, against diffusers'
``load_lora_weights`` + ``fuse_lora`` with LoRA files PEFT makes here.

Per preset (tiny-sd15, tiny-sdxl) and scheduler (two each): one LoRA at scales
0.5 and 1.0, two LoRAs together (ranks 4 and 2, scales 1.0 and 0.7), and the
same LoRA with kohya's keys (with the first scheduler). One Node process per
preset runs every generation in order, taking LoRAs in and out of one loaded
model, and hashes the weights
on the GPU after each: with no LoRA left they are the build's, bit for bit. A
LoRA file that does not fit is refused with one line and changes nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from .editing import NEGATIVE, PROMPT, RENDER, SEED
from .lora_files import LORA_STEPS, fused_reference, kohya_copy, make_lora

if TYPE_CHECKING:
    from .conftest import PSNR

pytestmark = [
    pytest.mark.dawn,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SCHEDULERS = {"tiny-sd15": ("euler", "dpmpp-2m"), "tiny-sdxl": ("euler", "ddim")}
#: The LoRA settings each scheduler runs, by label: [(file label, scale)].
SETTINGS: dict[str, list[tuple[str, float]]] = {
    "a@0.5": [("a", 0.5)],
    "a@1": [("a", 1.0)],
    "a@1+b@0.7": [("a", 1.0), ("b", 0.7)],
    "kohya-a@1": [("kohya-a", 1.0)],
}


class LoraRun:
    """One preset's LoRA files, its Node generations and diffusers' references."""

    def __init__(self, preset: str, build: Path, directory: Path, classes: dict[str, Any]):
        import base64

        from wsd_capture import PRESET_KINDS, write_preset

        xl = PRESET_KINDS[preset] == "sdxl"
        model_dir = write_preset(preset, directory / preset)
        a = make_lora(model_dir, directory / "a", xl=xl, seed=1)
        self.files = {
            "a": a,
            "b": make_lora(model_dir, directory / "b", xl=xl, seed=2, rank=2, alpha=2),
            "kohya-a": kohya_copy(a, directory / "kohya" / "a.safetensors", xl=xl),
            "truncated": directory / "truncated.safetensors",
        }
        self.files["truncated"].write_bytes(a.read_bytes()[:-100])
        self.reference = fused_reference(model_dir, classes, xl=xl, steps=LORA_STEPS)
        # Base, each setting per scheduler, a file that does not fit, base again.
        self.plan: list[tuple[str, str]] = [(SCHEDULERS[preset][0], "")]
        # kohya's keys: the same LoRA, so once (with the first scheduler) is enough.
        self.plan += [
            (s, label)
            for i, s in enumerate(SCHEDULERS[preset])
            for label in SETTINGS
            if i == 0 or not label.startswith("kohya")
        ]
        # With sequential offload the text encoders are uploaded again each generation,
        # and the LoRA merged into them again.
        first = SCHEDULERS[preset][0]
        self.plan += [(first, "a@1 offload"), (first, "truncated"), (first, "")]
        variations = [
            {
                "scheduler": s,
                "loras": [{"path": str(self.files[f]), "scale": v} for f, v in self._loras(label)],
                "offload": label.endswith("offload"),
            }
            for s, label in self.plan
        ]
        options = {
            "prompt": PROMPT,
            "negativePrompt": NEGATIVE,
            "seed": SEED,
            "steps": LORA_STEPS,
            "returnLatents": True,
            "returnPixels": True,
            "weightDigest": True,
            "variations": variations,
        }
        done = subprocess.run(
            ["node", str(RENDER), str(build), json.dumps(options)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        h, w = report["height"], report["width"]
        self.runs: list[dict[str, Any]] = report["runs"]
        for run in self.runs:
            if "rgba" not in run:
                continue  # a LoRA that does not fit: no generation
            rgba = np.frombuffer(base64.b64decode(run["rgba"]), np.uint8).reshape(h, w, 4)
            run["image"] = rgba[..., :3]

    @staticmethod
    def _loras(label: str) -> list[tuple[str, float]]:
        if label == "truncated":
            return [("truncated", 1.0)]
        return SETTINGS.get(label.removesuffix(" offload"), [])

    def result(self, scheduler: str, label: str) -> dict[str, Any]:
        return self.runs[self.plan.index((scheduler, label))]


@pytest.fixture(scope="module")
def lora_runs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    scheduler_classes: dict[str, Any],
) -> Callable[[str], LoraRun]:
    made: dict[str, LoraRun] = {}

    def run(preset: str) -> LoraRun:
        if preset not in made:
            build = request.getfixturevalue(f"tiny_{preset.removeprefix('tiny-')}_build")
            made[preset] = LoraRun(
                preset, build, tmp_path_factory.mktemp("lora"), scheduler_classes
            )
        return made[preset]

    return run


CASES = [(p, s) for p, names in SCHEDULERS.items() for s in names]


@pytest.mark.parametrize(("preset", "scheduler"), CASES)
def test_lora_matches_diffusers_fuse_lora(
    lora_runs: Callable[[str], LoraRun], psnr: PSNR, preset: str, scheduler: str
) -> None:
    run = lora_runs(preset)
    images = {}
    for label, loras in SETTINGS.items():
        if (scheduler, label) not in run.plan:
            continue
        got = run.result(scheduler, label)
        assert got["loras"] == [{"name": run.files[f].name, "scale": s} for f, s in loras], got[
            "loras"
        ]
        expected, latents = run.reference(
            scheduler, [(run.files[f.removeprefix("kohya-")], s) for f, s in loras]
        )
        assert psnr(got["image"], expected) >= 40, (label, psnr(got["image"], expected))
        got_latents = np.asarray(got["latents"], np.float32).reshape(latents.shape)
        assert np.abs(got_latents - latents).max() <= 1e-3 * float(np.abs(latents).max()), label
        images[label] = got["image"]
    # The scale and the second LoRA matter: measurably different images.
    assert psnr(images["a@0.5"], images["a@1"]) < 35
    assert psnr(images["a@1"], images["a@1+b@0.7"]) < 35


@pytest.mark.parametrize("preset", list(SCHEDULERS))
def test_removing_loras_restores_the_weights_bit_for_bit(
    lora_runs: Callable[[str], LoraRun], preset: str
) -> None:
    run = lora_runs(preset)
    first = SCHEDULERS[preset][0]
    base = run.runs[0]
    assert base["loras"] == [] and "loraError" not in base
    merged = run.result(first, "a@1")["weightDigest"]
    assert merged != base["weightDigest"]
    # After every setting, and a refused file, the last generation has none again.
    last = run.runs[-1]
    assert last["loras"] == [] and last["weightDigest"] == base["weightDigest"]
    assert np.array_equal(last["image"], base["image"])


@pytest.mark.parametrize("preset", list(SCHEDULERS))
def test_a_truncated_lora_is_refused_and_changes_nothing(
    lora_runs: Callable[[str], LoraRun], preset: str
) -> None:
    run = lora_runs(preset)
    refused = run.result(SCHEDULERS[preset][0], "truncated")
    before = run.runs[run.runs.index(refused) - 1]
    assert "truncated" in refused["loraError"] and "\n" not in refused["loraError"]
    assert refused["loraError"].startswith(
        "truncated.safetensors is not a usable .safetensors file"
    )
    assert "rgba" not in refused  # nothing generated
    # The LoRAs in use before stay, and so do the weights.
    assert refused["loras"] == before["loras"]
    assert refused["weightDigest"] == before["weightDigest"]


@pytest.mark.parametrize("preset", list(SCHEDULERS))
def test_loras_stay_merged_with_sequential_offload(
    lora_runs: Callable[[str], LoraRun], preset: str
) -> None:
    run = lora_runs(preset)
    first = SCHEDULERS[preset][0]
    offloaded, resident = run.result(first, "a@1 offload"), run.result(first, "a@1")
    assert offloaded["offload"] and not resident["offload"]
    # The text encoders came back from the build's files and took the LoRA again.
    assert np.array_equal(offloaded["image"], resident["image"])
