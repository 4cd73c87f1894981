"""The pipeline's own GPU functions: the glue between the captured models.

The browser keeps every latent on the GPU, so everything it does between
model calls is a compiled function too: pairing the prompt embeddings for
classifier-free guidance, duplicating (and scaling) the latents for the
UNet's batch of two, combining the two noise predictions, the scheduler's
element-wise update (a linear combination of up to :data:`MAX_TERMS`
tensors whose coefficients the page computes from the scheduler config, and
a clamp for ``clip_sample``),
and turning the VAE's image into packed RGBA pixels for a canvas.

Scalars (guidance scale, scheduler coefficients) are float32 tensors, so
changing them never needs a recompile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tvm
from tvm import relax

#: The most tensors one scheduler update combines (PLMS uses four model outputs).
MAX_TERMS = 4

F32 = "float32"


def combine_name(terms: int) -> str:
    """The name of the function computing ``sum(c[i] * x[i])`` over ``terms`` tensors."""
    return f"combine{terms}"


def _tensor(name: str, shape: Sequence[int], dtype: str = F32) -> relax.Var:
    return relax.Var(name, relax.TensorType(tuple(shape), dtype))


def _scalar(values: relax.Expr, index: int) -> relax.Expr:
    """``values[index]`` as a one-element tensor that broadcasts."""
    return relax.op.strided_slice(values, axes=[0], begin=[index], end=[index + 1])


def add_pipeline_functions(
    bb: relax.BlockBuilder, *, latent_shape: Sequence[int], text_shape: Sequence[int]
) -> None:
    """Emit the glue functions for latents of ``latent_shape`` ([1, C, h, w]) and
    text embeddings of ``text_shape`` ([1, tokens, hidden]) into ``bb``."""
    latent = tuple(latent_shape)
    pair = (2, *latent[1:])
    text = tuple(text_shape)

    neg = _tensor("negative", text)
    pos = _tensor("positive", text)
    with bb.function("cfg_embeddings", [neg, pos]):
        # diffusers' order: the unconditional half first.
        out = bb.emit(relax.op.concat([neg, pos], axis=0))
        bb.emit_func_output(out)

    lat = _tensor("latents", latent)
    scale = _tensor("scale", (1,))
    with bb.function("unet_input", [lat, scale]):
        scaled = bb.emit(relax.op.multiply(lat, scale))
        out = bb.emit(relax.op.concat([scaled, scaled], axis=0))
        bb.emit_func_output(out)

    pred = _tensor("noise_pred", pair)
    guidance = _tensor("guidance", (1,))
    with bb.function("cfg_combine", [pred, guidance]):
        uncond = bb.emit(relax.op.strided_slice(pred, axes=[0], begin=[0], end=[1]))
        cond = bb.emit(relax.op.strided_slice(pred, axes=[0], begin=[1], end=[2]))
        delta = bb.emit(relax.op.subtract(cond, uncond))
        out = bb.emit(relax.op.add(uncond, relax.op.multiply(guidance, delta)))
        bb.emit_func_output(out)

    x = _tensor("x", latent)
    limit = _tensor("limit", (1,))
    with bb.function("clamp", [x, limit]):
        # clip_sample: x clamped to [-limit, limit], as torch's clamp.
        low = relax.op.maximum(x, relax.op.negative(limit))
        out = bb.emit(relax.op.minimum(low, limit))
        bb.emit_func_output(out)

    for terms in range(1, MAX_TERMS + 1):
        xs = [_tensor(f"x{i}", latent) for i in range(terms)]
        coeffs = _tensor("coeffs", (terms,))
        with bb.function(combine_name(terms), [*xs, coeffs]):
            acc: relax.Expr = relax.op.multiply(_scalar(coeffs, 0), xs[0])
            for i in range(1, terms):
                acc = relax.op.add(acc, relax.op.multiply(_scalar(coeffs, i), xs[i]))
            out = bb.emit(acc)
            bb.emit_func_output(out)


def add_image_to_rgba(bb: relax.BlockBuilder, *, image_shape: Sequence[int]) -> None:
    """Emit ``image_to_rgba``: a [1, 3, H, W] image in [-1, 1] to uint32 [H, W] pixels.

    Each pixel is ``r | g << 8 | b << 16 | 255 << 24``: little-endian RGBA
    bytes, ready for ``ImageData``. The rounding is diffusers' postprocess:
    ``round(clamp(x / 2 + 0.5, 0, 1) * 255)``.
    """
    _, channels, height, width = image_shape
    if channels != 3:
        raise ValueError(f"image_to_rgba needs an RGB image, got {channels} channels")
    image = _tensor("image", tuple(image_shape))
    with bb.function("image_to_rgba", [image]):
        unit = relax.op.clip(
            relax.op.add(relax.op.multiply(image, relax.const(0.5, F32)), relax.const(0.5, F32)),
            0.0,
            1.0,
        )
        levels = bb.emit(relax.op.round(relax.op.multiply(unit, relax.const(255.0, F32))))
        chw = bb.emit(relax.op.astype(relax.op.reshape(levels, (3, height, width)), "uint32"))
        pixel: relax.Expr = relax.const(0xFF000000, "uint32")
        for c in range(3):
            plane = relax.op.squeeze(
                relax.op.strided_slice(chw, axes=[0], begin=[c], end=[c + 1]), axis=[0]
            )
            shifted = relax.op.left_shift(plane, relax.const(8 * c, "uint32"))
            pixel = relax.op.bitwise_or(pixel, shifted)
        out = bb.emit(pixel)
        bb.emit_func_output(out)


@dataclass(frozen=True)
class XLTextShapes:
    """SDXL's text encoder outputs: ``first`` [1, L, D1], ``second`` [1, L, D2],
    ``pooled`` [1, P]."""

    first: Sequence[int]
    second: Sequence[int]
    pooled: Sequence[int]


def add_xl_text_functions(bb: relax.BlockBuilder, shapes: XLTextShapes) -> None:
    """Emit SDXL's text glue: ``text_concat`` joins the two encoders' states on
    the feature axis (``torch.concat(..., dim=-1)``, first encoder first) and
    ``cfg_text_embeds`` pairs the negative and positive pooled embeddings."""
    first = _tensor("first", tuple(shapes.first))
    second = _tensor("second", tuple(shapes.second))
    with bb.function("text_concat", [first, second]):
        out = bb.emit(relax.op.concat([first, second], axis=-1))
        bb.emit_func_output(out)
    neg = _tensor("negative", tuple(shapes.pooled))
    pos = _tensor("positive", tuple(shapes.pooled))
    with bb.function("cfg_text_embeds", [neg, pos]):
        out = bb.emit(relax.op.concat([neg, pos], axis=0))
        bb.emit_func_output(out)


def pipeline_functions_module(
    *,
    latent_shape: Sequence[int],
    text_shape: Sequence[int],
    image_shape: Sequence[int],
    xl_text: XLTextShapes | None = None,
) -> tvm.IRModule:
    """All glue functions of an SD pipeline as one IRModule (SDXL's with ``xl_text``)."""
    bb = relax.BlockBuilder()
    add_pipeline_functions(bb, latent_shape=latent_shape, text_shape=text_shape)
    add_image_to_rgba(bb, image_shape=image_shape)
    if xl_text is not None:
        add_xl_text_functions(bb, xl_text)
    return bb.get()
