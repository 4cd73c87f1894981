"""A real model directory: tensor-cache weights, a wasm file, a tokenizer, a manifest body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wsd_artifacts import stamp_build, write_tensor_cache

# Any bytes do for the library; these start like a real wasm module.
# A valid (empty) WebAssembly module with one custom section "pad" of 1 KiB.
WASM_BYTES = b"\x00asm\x01\x00\x00\x00" + b"\x00\x84\x08\x03pad" + bytes(range(256)) * 4


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "text_encoder.embed": rng.standard_normal((16, 8)).astype("float32"),
        "text_encoder.proj": rng.standard_normal((8, 8)).astype("float32"),
        "unet.conv_in.weight": rng.standard_normal((8, 4, 3, 3)).astype("float16"),
        "unet.conv_in.bias": rng.standard_normal((8,)).astype("float16"),
        "unet.conv_out.weight": rng.standard_normal((4, 8, 3, 3)).astype("float16"),
    }


def _body(tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    def component(prefix: str) -> dict[str, Any]:
        names = [n for n in tensors if n.startswith(prefix)]
        return {
            "param_names": names,
            "param_count": len(names),
            "param_bytes": sum(tensors[n].nbytes for n in names),
        }

    def tensor(name: str, shape: list[int], dtype: str) -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": dtype}

    return {
        "kind": "sd15",
        "model": {"source": "tiny-random-sd15", "precision": "fp16"},
        "image": {"height": 64, "width": 64},
        "latent": {"shape": [1, 4, 8, 8], "scaling_factor": 0.18215, "vae_scale_factor": 8},
        "library": "model.wasm",
        "runtime": {"tvm": "0.27.0"},
        "weights": "tensor-cache.json",
        "functions": {
            "text_encoder": {
                "inputs": [tensor("input_ids", [1, 77], "int32")],
                "outputs": [tensor("hidden_states", [1, 77, 8], "float32")],
                "params": "text_encoder",
            },
            "unet": {
                "inputs": [
                    tensor("sample", [2, 4, 8, 8], "float16"),
                    tensor("timestep", [], "float32"),
                    tensor("encoder_hidden_states", [2, 77, 8], "float16"),
                ],
                "outputs": [tensor("noise_pred", [2, 4, 8, 8], "float16")],
                "params": "unet",
            },
            "cfg_combine": {
                "inputs": [tensor("noise_pred", [2, 4, 8, 8], "float16")],
                "outputs": [tensor("guided", [1, 4, 8, 8], "float16")],
                "params": None,
            },
        },
        "tasks": {"text-to-image": ["text_encoder", "unet", "cfg_combine"]},
        "components": {
            "text_encoder": component("text_encoder."),
            "unet": component("unet."),
        },
        "scheduler": {
            "class_name": "PNDMScheduler",
            "config": {
                "_class_name": "PNDMScheduler",
                "num_train_timesteps": 1000,
                "beta_schedule": "scaled_linear",
                "skip_prk_steps": True,
                "trained_betas": None,
            },
            "max_terms": 4,
        },
        "tokenizer": {
            "file": "tokenizer.json",
            "max_length": 77,
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
    }


@pytest.fixture
def model_dir(tmp_path: Path, body: dict[str, Any]) -> Path:
    """A model directory without a manifest; weights split over three shards.

    Its library is stamped for ``body`` (``stamp_build``), as a build does
    before it writes the manifest.
    """
    out = tmp_path / "model"
    write_tensor_cache(out, _tensors(), shard_bytes=600)
    (out / "model.wasm").write_bytes(WASM_BYTES)
    (out / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}}))
    stamp_build(out, body)
    return out


@pytest.fixture
def body() -> dict[str, Any]:
    """A valid manifest body for ``model_dir`` (everything but the computed fields)."""
    return _body(_tensors())
