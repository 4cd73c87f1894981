"""The pipeline's own GPU functions: the glue between the captured models.

The browser keeps every latent on the GPU, so everything it does between
model calls is a compiled function too: pairing the prompt embeddings for
classifier-free guidance, duplicating (and scaling) the latents for the
UNet's batch of two, combining the two noise predictions, the scheduler's
element-wise update (a linear combination of up to :data:`MAX_TERMS`
tensors whose coefficients the page computes from the scheduler config, and
a clamp for ``clip_sample``), inpainting's blend of the image back outside
the mask, and turning the VAE's image into packed RGBA pixels for a canvas.

Scalars (guidance scale, scheduler coefficients) are float32 tensors, so
changing them never needs a recompile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class GlueShapes:
    """The tensors the glue joins, read from the captured graphs by name.

    ``latent`` [1, C, h, w] (the VAE decoder's ``latents``), ``text`` [1, tokens,
    hidden] (one half of the UNet's ``encoder_hidden_states``), ``image``
    [1, 3, H, W] (the VAE decoder's ``image``); SDXL's ``xl_text`` (the two text
    encoders' ``hidden_states`` and the second one's ``text_embeds``); the UNet's
    input channels (``unet_channels``).
    """

    latent: Sequence[int]
    text: Sequence[int]
    image: Sequence[int]
    xl_text: XLTextShapes | None = None
    #: The UNet's input channels (an inpainting checkpoint's: latents, mask and
    #: masked image's latents; None: the latents').
    unet_channels: int | None = None


def add_guidance_functions(bb: relax.BlockBuilder, shapes: GlueShapes) -> None:
    """Emit classifier-free guidance's glue: ``cfg_embeddings`` pairs the negative and
    positive text embeddings, ``unet_input`` duplicates (and scales) the latents for
    the UNet's batch of two, ``cfg_combine`` combines the two noise predictions."""
    latent = tuple(shapes.latent)
    pair = (2, *latent[1:])
    text = tuple(shapes.text)

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


def add_scheduler_functions(bb: relax.BlockBuilder, shapes: GlueShapes) -> None:
    """Emit the schedulers' element-wise updates on latents: ``clamp`` and
    ``combine1`` .. ``combine<MAX_TERMS>`` (see :func:`combine_name`)."""
    latent = tuple(shapes.latent)
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


def add_image_to_rgba(bb: relax.BlockBuilder, shapes: GlueShapes) -> None:
    """Emit ``image_to_rgba``: a [1, 3, H, W] image in [-1, 1] to uint32 [H, W] pixels.

    Each pixel is ``r | g << 8 | b << 16 | 255 << 24``: little-endian RGBA
    bytes, ready for ``ImageData``. The rounding is diffusers' postprocess:
    ``round(clamp(x / 2 + 0.5, 0, 1) * 255)``.
    """
    image_shape = tuple(shapes.image)
    _, channels, height, width = image_shape
    if channels != 3:
        raise ValueError(f"image_to_rgba needs an RGB image, got {channels} channels")
    image = _tensor("image", image_shape)
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


#: The glue function an inpainting checkpoint's build has (and others do not).
INPAINT_UNET_INPUT = "inpaint_unet_input"


def add_inpaint_functions(bb: relax.BlockBuilder, shapes: GlueShapes) -> None:
    """Emit inpainting's glue: ``mask_blend`` keeps the latents where the mask
    is 1 and the (noised) image's latents where it is 0, as diffusers'
    inpainting pipelines do after each step with a 4-channel UNet:
    ``(1 - mask) * image + mask * latents``, the mask [1, 1, h, w] broadcast
    over the channels. For an inpainting checkpoint's UNet (9 channels),
    ``inpaint_unet_input`` is its ``unet_input``: the scaled latents, the mask
    and the masked image's latents joined on the channels, for both halves of
    the guidance batch."""
    latent = tuple(shapes.latent)
    image = _tensor("image_latents", latent)
    lat = _tensor("latents", latent)
    mask_shape = (latent[0], 1, *latent[2:])
    mask = _tensor("mask", mask_shape)
    with bb.function("mask_blend", [image, lat, mask]):
        keep = relax.op.subtract(relax.const(1.0, F32), mask)
        out = bb.emit(relax.op.add(relax.op.multiply(keep, image), relax.op.multiply(mask, lat)))
        bb.emit_func_output(out)
    if shapes.unet_channels != 2 * latent[1] + 1:
        return
    lat, scale = _tensor("latents", latent), _tensor("scale", (1,))
    mask, masked = _tensor("mask", mask_shape), _tensor("masked_image_latents", latent)
    with bb.function(INPAINT_UNET_INPUT, [lat, scale, mask, masked]):
        joined = bb.emit(relax.op.concat([relax.op.multiply(lat, scale), mask, masked], axis=1))
        out = bb.emit(relax.op.concat([joined, joined], axis=0))
        bb.emit_func_output(out)


@dataclass(frozen=True)
class XLTextShapes:
    """SDXL's text encoder outputs: ``first`` [1, L, D1], ``second`` [1, L, D2],
    ``pooled`` [1, P]."""

    first: Sequence[int]
    second: Sequence[int]
    pooled: Sequence[int]


def add_xl_text_functions(bb: relax.BlockBuilder, glue_shapes: GlueShapes) -> None:
    """Emit SDXL's text glue: ``text_concat`` joins the two encoders' states on
    the feature axis (``torch.concat(..., dim=-1)``, first encoder first) and
    ``cfg_text_embeds`` pairs the negative and positive pooled embeddings."""
    shapes = glue_shapes.xl_text
    if shapes is None:
        raise ValueError("the xl_text glue needs the SDXL text encoders' shapes")
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


#: The glue's families by name: what each model kind's record
#: (``wsd_compile.BUILDS``) picks from.
GLUE_FAMILIES: dict[str, Callable[[relax.BlockBuilder, GlueShapes], None]] = {
    "guidance": add_guidance_functions,
    "scheduler": add_scheduler_functions,
    "image": add_image_to_rgba,
    "xl_text": add_xl_text_functions,
    "inpaint": add_inpaint_functions,
}


def glue_module(families: Sequence[str], shapes: GlueShapes) -> tvm.IRModule:
    """The glue functions of ``families`` (names of :data:`GLUE_FAMILIES`) as one IRModule."""
    bb = relax.BlockBuilder()
    for family in families:
        GLUE_FAMILIES[family](bb, shapes)
    return bb.get()
