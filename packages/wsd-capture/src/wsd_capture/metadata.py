"""What a captured pipeline is: tensor specs, component signatures, pipeline metadata.

Everything here is plain data that round-trips through JSON, so that capture
and compile can run as separate processes and the manifest can be written
without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .tokenizer import TokenizerInfo


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a captured component: its name, static shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], shape=tuple(data["shape"]), dtype=data["dtype"])


def _named(specs: tuple[TensorSpec, ...], name: str, what: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no {what} {name!r}; there are {', '.join(s.name for s in specs)}")


@dataclass(frozen=True)
class ComponentSpec:
    """The signature of one captured component (``text_encoder``, ``unet``, ``vae_decode``)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        """The input called ``name`` (``KeyError`` naming the inputs there are)."""
        return _named(self.inputs, name, f"{self.name} input")

    def output(self, name: str) -> TensorSpec:
        """The output called ``name`` (``KeyError`` naming the outputs there are)."""
        return _named(self.outputs, name, f"{self.name} output")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentSpec:
        return cls(
            name=data["name"],
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )


@dataclass(frozen=True)
class SchedulerInfo:
    """The pipeline's diffusers scheduler: class name and public config as plain JSON."""

    class_name: str
    config: dict[str, Any]


@dataclass(frozen=True)
class XLConditioning:
    """SDXL's conditioning beyond the prompt embeddings, as its pipeline builds it.

    - ``force_zeros_for_empty_prompt``: without a negative prompt, the negative
      embeddings and pooled embeddings are zeros (not the encoding of ``""``).
    - ``pooled_token``: which token's state the second text encoder pools:
      ``"argmax"`` (the position of the largest id, CLIP configs with
      ``eos_token_id == 2``) or ``"eos"`` (the first ``eos_token_id``).
    - ``pooled_dim``: length of the pooled (projected) text embedding.
    - ``time_ids_dim``: length of ``time_ids`` (original size, crop top-left,
      target size: 6).
    - ``vae_force_upcast``: the VAE overflows in fp16, so it runs in fp32.
    """

    force_zeros_for_empty_prompt: bool
    pooled_token: str
    pooled_dim: int
    time_ids_dim: int
    vae_force_upcast: bool


@dataclass(frozen=True)
class PipelineMetadata:
    """Everything about a captured pipeline that the compiler and the browser need.

    ``vae_scaling_factor`` is the VAE's latent scaling (``vae.config.scaling_factor``);
    ``vae_scale_factor`` is its spatial downsampling factor (8 for SD 1.5).
    """

    kind: str
    source: str
    height: int
    width: int
    latent_shape: tuple[int, ...]
    vae_scaling_factor: float
    vae_scale_factor: int
    text_hidden_size: int
    components: dict[str, ComponentSpec]
    scheduler: SchedulerInfo
    tokenizer: TokenizerInfo
    tokenizer_2: TokenizerInfo | None = None
    conditioning: XLConditioning | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON dict (lists, not tuples) that :meth:`from_dict` reads back."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineMetadata:
        """The metadata :meth:`to_dict` wrote (as read back from ``metadata.json``)."""
        return cls(
            kind=data["kind"],
            source=data["source"],
            height=data["height"],
            width=data["width"],
            latent_shape=tuple(data["latent_shape"]),
            vae_scaling_factor=data["vae_scaling_factor"],
            vae_scale_factor=data["vae_scale_factor"],
            text_hidden_size=data["text_hidden_size"],
            components={
                name: ComponentSpec.from_dict(spec) for name, spec in data["components"].items()
            },
            scheduler=SchedulerInfo(**data["scheduler"]),
            tokenizer=TokenizerInfo(**data["tokenizer"]),
            tokenizer_2=TokenizerInfo(**data["tokenizer_2"]) if data.get("tokenizer_2") else None,
            conditioning=(
                XLConditioning(**data["conditioning"]) if data.get("conditioning") else None
            ),
        )
