"""load_sd15: an fp32 pipeline with WebGPU-safe attention, or one actionable error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor

from wsd_capture import CaptureError, load_sd15


@pytest.fixture
def copy_of_preset(preset_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(preset_dir, tmp_path / "model"))


def test_the_pipeline_loads_in_fp32(pipe: StableDiffusionPipeline) -> None:
    for model in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_attention_is_the_classic_kind_webgpu_accepts(pipe: StableDiffusionPipeline) -> None:
    processors = [*pipe.unet.attn_processors.values(), *pipe.vae.attn_processors.values()]
    assert processors and all(isinstance(p, AttnProcessor) for p in processors)
    assert pipe.text_encoder.config._attn_implementation == "eager"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist: give a diffusers pipeline directory"):
        load_sd15(tmp_path / "nowhere")


def test_a_file_is_not_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CaptureError, match="is a file, not a diffusers pipeline directory"):
        load_sd15(tmp_path / "model.safetensors")


def test_a_directory_without_model_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"has no model_index\.json"):
        load_sd15(tmp_path)


def test_a_broken_model_index_is_refused(copy_of_preset: Path) -> None:
    (copy_of_preset / "model_index.json").write_text("{")
    with pytest.raises(CaptureError, match=r"model_index\.json is not valid JSON"):
        load_sd15(copy_of_preset)


def test_another_pipeline_class_is_named(copy_of_preset: Path) -> None:
    index_path = copy_of_preset / "model_index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(CaptureError, match="holds a StableDiffusionXLPipeline, not a Stable"):
        load_sd15(copy_of_preset)


def test_missing_components_are_named(copy_of_preset: Path) -> None:
    shutil.rmtree(copy_of_preset / "unet")
    index_path = copy_of_preset / "model_index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "vae": [None, None]}))
    with pytest.raises(
        CaptureError,
        match=r"is incomplete: the vae entry of model_index\.json and unet/ are missing; "
        r"download the full model \(all components\)$",
    ):
        load_sd15(copy_of_preset)


def test_a_component_without_its_config_is_named(copy_of_preset: Path) -> None:
    (copy_of_preset / "unet" / "config.json").unlink()
    with pytest.raises(CaptureError, match=r"is incomplete: unet/config\.json is missing;"):
        load_sd15(copy_of_preset)


def test_weights_that_do_not_fit_the_config_are_one_error(copy_of_preset: Path) -> None:
    config_path = copy_of_preset / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "cross_attention_dim": 48}))
    # diffusers words the mismatch one way without accelerate, another with it (peft needs it).
    with pytest.raises(
        CaptureError,
        match=r"cannot load \S+ as a Stable Diffusion pipeline \((Error\(s\) in loading "
        r"state_dict for UNet2DConditionModel: size mismatch|Cannot load .*attn2\.to_k\.weight "
        r"expected shape torch\.Size\(\[32, 48\]\)).*re-download the model",
    ):
        load_sd15(copy_of_preset)
