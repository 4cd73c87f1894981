"""The tiny-sd15 preset on disk, loaded, and captured: built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline

from wsd_capture import CapturedPipeline, capture_sd15, load_sd15, write_preset


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny models run fastest on one thread; two OpenMP threads on a busy
    2-core machine spin against each other (a 0.05 s pipeline run took 10 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def preset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_preset("tiny-sd15", tmp_path_factory.mktemp("preset") / "tiny-sd15")


@pytest.fixture(scope="session")
def pipe(preset_dir: Path) -> StableDiffusionPipeline:
    pipe = load_sd15(preset_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def captured(pipe: StableDiffusionPipeline) -> CapturedPipeline:
    return capture_sd15(pipe)
