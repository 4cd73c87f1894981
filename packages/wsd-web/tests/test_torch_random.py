"""The JS TorchGenerator draws exactly what torch.randn does on the CPU.

tests/js/torch_random_driver.mjs draws, for each case, a sequence of shapes from
one `TorchGenerator(seed)`; torch draws the same sequence from one
`torch.Generator().manual_seed(seed)`; every float32 must be bit-identical.
The cases cover the scalar path (numel < 16, with its cached second sample),
whole blocks of 16, the redrawn tail when numel % 16 != 0, 64-bit seeds, and
successive draws that mix small and large shapes as a sampler does.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

DRIVER = Path(__file__).parent / "js" / "torch_random_driver.mjs"

SEEDS = [0, 1, 42, 2**31 - 1, 2**32 + 7, 2**63 + 5, 2**64 - 1]
SHAPES: list[tuple[int, ...]] = [
    (1, 4, 8, 8),
    (1, 4, 64, 64),
    (2, 4, 9, 7),  # numel 504: not a multiple of 16
    (1,),
    (5,),
    (15,),
    (16,),
    (17,),
    (31,),
    (33,),
    (),
    (0,),
]
# Successive draws from one generator: latents, then step noise, mixed with
# small (cached-sample) draws and odd tails.
SEQUENCE: list[tuple[int, ...]] = [
    (1, 4, 64, 64),
    (5,),
    (1, 4, 64, 64),
    (1,),
    (3,),
    (17,),
    (2, 4, 9, 7),
    (1,),
    (15,),
    (16,),
    (1, 4, 8, 8),
    (33,),
    (1,),
]


def _cases() -> list[tuple[str, int, list[tuple[int, ...]]]]:
    cases = []
    for seed in SEEDS:
        cases += [(f"seed={seed}-shape={shape}", seed, [shape]) for shape in SHAPES]
        cases.append((f"seed={seed}-sequence", seed, SEQUENCE))
    # Many small draws: the double Box-Muller and its cache, over ~1500 values.
    rng = np.random.default_rng(7)
    cases.append(("small-draws", 123, [(int(n),) for n in rng.integers(1, 16, size=200)]))
    return cases


CASES = _cases()


def _torch(seed: int, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).numpy().reshape(-1) for shape in shapes]


@pytest.fixture(scope="module")
def js_draws() -> dict[str, list[np.ndarray]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; install Node.js >= 20 for the torch_random parity test")
    payload = {
        "cases": [
            {"seed": str(seed), "shapes": [list(s) for s in shapes]} for _, seed, shapes in CASES
        ]
    }
    out = subprocess.run(
        [node, str(DRIVER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    results = json.loads(out.stdout)["cases"]
    return {
        case_id: [np.frombuffer(base64.b64decode(b), dtype="<f4") for b in draws]
        for (case_id, _, _), draws in zip(CASES, results, strict=True)
    }


# torch_random.js reproduces torch's AVX2 normal kernel (the AVX512 capability
# runs the same one). Where torch runs another kernel (DEFAULT, ARM, ...) only
# the scalar path (numel < 16) is bit-exact and large draws agree to ~1e-6.
AVX2_CLASS = torch.backends.cpu.get_cpu_capability() in {"AVX2", "AVX512"}


@pytest.mark.parametrize(("case_id", "seed", "shapes"), CASES, ids=[c[0] for c in CASES])
def test_bit_identical_to_torch(
    js_draws: dict[str, list[np.ndarray]], case_id: str, seed: int, shapes: list[tuple[int, ...]]
) -> None:
    expected = _torch(seed, shapes)
    got = js_draws[case_id]
    assert len(got) == len(expected)
    for i, (shape, want, have) in enumerate(zip(shapes, expected, got, strict=True)):
        assert have.shape == want.shape, f"draw {i} {shape}: {have.shape} != {want.shape}"
        if not AVX2_CLASS and want.size >= 16:
            np.testing.assert_allclose(have, want, rtol=0, atol=1e-5, err_msg=f"draw {i} {shape}")
            continue
        diff = np.flatnonzero(have.view(np.uint32) != want.view(np.uint32))
        assert diff.size == 0, (
            f"draw {i} {shape}: {diff.size} of {want.size} values differ, first at {diff[0]}: "
            f"js {have[diff[0]]!r} torch {want[diff[0]]!r}"
        )
