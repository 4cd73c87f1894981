// Inpainting with an ordinary (4-channel UNet) checkpoint, as diffusers'
// StableDiffusionInpaintPipeline and StableDiffusionXLInpaintPipeline do it:
// the image is encoded (the generator's first draw), the noise drawn (its
// second), and the masked image's encoding drawn for (its third: diffusers
// encodes it for every UNet, a 4-channel one does not read it); the denoising
// starts from noise (strength 1) or the noised image; after every step the
// latents outside the mask are replaced by the image's latents noised to the
// next timestep (the clean ones after the last), by the build's mask_blend.
// The mask is binarised as diffusers' mask processor does (grayscale >= 0.5)
// and brought to the latents' size by nearest neighbour.

import { imagePixels } from "./image_to_image.js";
import { SD15Pipeline } from "./stable_diffusion.js";
import { SDXLPipeline } from "./stable_diffusion_xl.js";

/** @typedef {import("./stable_diffusion.js").Run} Run */
/** @typedef {import("./stable_diffusion.js").Image} Image */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */

/**
 * The mask as diffusers' mask processor makes it, at the image's size: 1 where
 * the picture is repainted (a pixel whose grayscale, PIL's "L", is at least half
 * white), 0 where it is kept.
 * @param {Image} mask  RGBA, at the build's image size.
 * @param {number} height
 * @param {number} width
 * @returns {Uint8Array} height * width values, 0 or 1.
 */
export function binaryMask(mask, height, width) {
  if (!mask || !ArrayBuffer.isView(mask.rgba)) {
    throw new Error("inpainting needs a mask: RGBA bytes with its width and height (white: repaint)");
  }
  if (mask.width !== width || mask.height !== height || mask.rgba.length !== width * height * 4) {
    throw new Error(
      `the mask is ${mask.width}x${mask.height} (${mask.rgba.length} bytes) but the image is ${width}x${height}: ` +
      "give a mask of the image's size",
    );
  }
  const out = new Uint8Array(width * height);
  for (let i = 0; i < out.length; i++) {
    const [r, g, b] = [mask.rgba[4 * i], mask.rgba[4 * i + 1], mask.rgba[4 * i + 2]];
    // PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point.
    const luma = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    out[i] = luma >= 128 ? 1 : 0;
  }
  return out;
}

/**
 * A full-size binary mask brought to [h, w] as torch's nearest interpolation does
 * (each latent takes the pixel at its top-left: index * factor).
 * @param {Uint8Array} mask  height * width values.
 * @param {number} width
 * @param {number[]} latentShape  [1, C, h, w]
 * @param {number} factor  The VAE's scale factor.
 * @returns {Float32Array} h * w values.
 */
export function latentMask(mask, width, latentShape, factor) {
  const [h, w] = latentShape.slice(2);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[y * w + x] = mask[y * factor * width + x * factor];
  }
  return out;
}

/**
 * What an inpainting run keeps on the GPU through its loop.
 * @typedef {object} InpaintState
 * @property {Tensor} imageLatents
 * @property {Tensor} noise  The noise the image's latents are noised with at each step.
 * @property {Tensor} mask  [1, 1, h, w]
 * @property {number} step  Steps done.
 */

/** @type {WeakMap<Run, InpaintState>} */
const states = new WeakMap();

/**
 * The starting latents of an inpainting run, and its state for the loop.
 * @param {SD15Pipeline} pipeline
 * @param {Run} run
 * @returns {Promise<Tensor>}
 */
async function startInpainting(pipeline, run) {
  const { model, session } = pipeline;
  const { height, width } = model.manifest.image;
  const { shape, vae_scale_factor: factor } = model.manifest.latent;
  const pixels = imagePixels(/** @type {Image} */ (run.options.image), height, width);
  const mask = latentMask(binaryMask(/** @type {Image} */ (run.options.mask), height, width), width, shape, factor);
  const imageLatents = await model.withWeights(["vae_encode"], async () => {
    const sample = run.generator.randn(shape);
    return session.persist(() => model.call(
      "vae_encode", pipeline.tensor([1, 3, height, width], pixels), pipeline.tensor(shape, sample),
    ));
  });
  /** @type {Tensor[]} */
  const held = [imageLatents];
  try {
    const drawn = run.generator.randn(shape);
    const noise = session.persist(() => pipeline.tensor(shape, drawn));
    held.push(noise);
    // diffusers encodes the masked image too: its sample is drawn, and unused by a 4-channel UNet.
    run.generator.randn(shape);
    const maskTensor = session.persist(() => pipeline.tensor([1, 1, ...shape.slice(2)], mask));
    held.push(maskTensor);
    const strength = run.options.strength ?? defaultStrength(pipeline);
    let latents;
    if (strength === 1) {
      const sigma = Math.fround(run.scheduler.initNoiseSigma);
      const scaled = sigma === 1 ? drawn : drawn.map((v) => Math.fround(v * sigma));
      latents = session.persist(() => pipeline.tensor(shape, scaled));
    } else {
      latents = run.scheduler.addNoise(imageLatents, noise, run.scheduler.timesteps[0]);
    }
    states.set(run, { imageLatents, noise, mask: maskTensor, step: 0 });
    return latents;
  } catch (e) {
    for (const t of held) t.dispose();
    throw e;
  }
}

/**
 * The latents after a step, outside the mask replaced by the image's latents
 * noised to the next timestep (clean after the last). Consumes `latents`.
 * @param {SD15Pipeline} pipeline
 * @param {Run} run
 * @param {Tensor} latents
 * @returns {Tensor}
 */
function blendStep(pipeline, run, latents) {
  const state = /** @type {InpaintState} */ (states.get(run));
  const timesteps = run.scheduler.timesteps;
  state.step += 1;
  const last = state.step >= timesteps.length;
  const proper = last ? state.imageLatents : run.scheduler.addNoise(state.imageLatents, state.noise, timesteps[state.step]);
  try {
    return pipeline.session.persist(() => pipeline.model.call("mask_blend", proper, latents, state.mask));
  } finally {
    if (!last) proper.dispose();
    latents.dispose();
  }
}

/**
 * Release what an inpainting run kept.
 * @param {Run} run
 */
function endInpainting(run) {
  const state = states.get(run);
  if (!state) return;
  for (const t of [state.imageLatents, state.noise, state.mask]) t.dispose();
  states.delete(run);
}

/**
 * diffusers' default strength for the pipeline's kind: 1 for SD 1.5, 0.9999 for SDXL.
 * @param {SD15Pipeline} pipeline
 */
function defaultStrength(pipeline) {
  return pipeline instanceof SDXLPipeline ? 0.9999 : 1;
}

/**
 * The inpainting steps of a pipeline class: timesteps cut by the strength,
 * starting latents from the image, the blend after each step.
 * @template {new (...args: any[]) => SD15Pipeline} Base
 * @param {Base} Base
 */
function inpainting(Base) {
  return class extends Base {
    static optionGroups = Object.freeze([.../** @type {any} */ (Base).optionGroups, "image", "mask"]);

    static encodesImage = true;

    /** @param {Run} run */
    prepareTimesteps(run) {
      run.scheduler.setTimesteps(run.steps, { strength: run.options.strength ?? defaultStrength(this) });
    }

    /**
     * @param {Run} run
     * @returns {Promise<Tensor>}
     */
    async initialLatents(run) {
      return startInpainting(this, run);
    }

    /**
     * @param {Run} run
     * @param {Tensor} latents
     * @param {number} t
     * @param {Tensor[]} conditioning
     * @returns {Tensor}
     */
    denoiseStep(run, latents, t, conditioning) {
      return blendStep(this, run, super.denoiseStep(run, latents, t, conditioning));
    }

    /** @param {Run} run */
    endRun(run) {
      endInpainting(run);
      super.endRun(run);
    }
  };
}

/** Inpainting with an SD 1.5 build. */
export class SD15Inpainting extends inpainting(SD15Pipeline) {}

/** Inpainting with an SDXL build. */
export class SDXLInpainting extends inpainting(SDXLPipeline) {}
