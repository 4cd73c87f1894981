// Inpainting as diffusers' StableDiffusionInpaintPipeline and
// StableDiffusionXLInpaintPipeline do it, with an ordinary checkpoint (a
// 4-channel UNet) or an inpainting one (9 channels: latents, mask, masked
// image's latents). The generator is drawn from in diffusers' order: the
// image's encoding (4 channels: always; 9: below strength 1), the noise, the
// masked image's encoding (diffusers encodes it for every UNet; a 4-channel
// one does not read it). The denoising starts from noise (strength 1) or the
// noised image. With 4 channels, after every step the latents outside the
// mask are replaced by the image's latents noised to the next timestep (the
// clean ones after the last), by the build's mask_blend; with 9, the UNet
// takes the mask and the masked image's latents (inpaint_unet_input). The mask
// is binarised as diffusers' mask processor does (grayscale >= 0.5) and
// brought to the latents' size by nearest neighbour.

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

/** The glue function of an inpainting checkpoint's build (a 9-channel UNet). */
const INPAINT_UNET_INPUT = "inpaint_unet_input";

/**
 * What an inpainting run keeps on the GPU through its loop: with a 4-channel
 * UNet the image's latents and the noise (for the blend), with a 9-channel one
 * the masked image's latents (the UNet's extra input); the latent mask for both.
 * @typedef {object} InpaintState
 * @property {Tensor} mask  [1, 1, h, w]
 * @property {Tensor | null} imageLatents
 * @property {Tensor | null} noise
 * @property {Tensor | null} maskedLatents
 * @property {number} step  Steps done.
 */

/**
 * The image's pixels with the repainted part zeroed (diffusers' masked_image:
 * image * (mask < 0.5)).
 * @param {Float32Array} pixels  [1, 3, H, W]
 * @param {Uint8Array} mask  H * W values, 0 or 1.
 */
function maskedPixels(pixels, mask) {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = mask[i % mask.length] ? 0 : pixels[i];
  return out;
}

/**
 * The starting latents of an inpainting run (and its state for the loop), in
 * diffusers' order of generator draws: the image's encoding (a 4-channel UNet
 * always, a 9-channel one below strength 1), the noise, the masked image's encoding.
 * @param {SD15Pipeline} pipeline
 * @param {Run} run
 * @param {boolean} nine  The UNet is an inpainting checkpoint's.
 * @returns {Promise<{latents: Tensor, state: InpaintState}>}
 */
async function startInpainting(pipeline, run, nine) {
  const { model, session } = pipeline;
  const { height, width } = model.manifest.image;
  const { shape, vae_scale_factor: factor } = model.manifest.latent;
  const pixels = imagePixels(/** @type {Image} */ (run.options.image), height, width);
  const full = binaryMask(/** @type {Image} */ (run.options.mask), height, width);
  const strength = run.options.strength ?? defaultStrength(pipeline);
  /** @type {Tensor[]} */
  const held = [];
  const hold = (/** @type {Tensor} */ t) => (held.push(t), t);
  try {
    const imageLatents = !nine || strength !== 1 ? hold(await pipeline.encodeImage(run, pixels)) : null;
    const drawn = run.generator.randn(shape);
    const noise = hold(session.persist(() => pipeline.tensor(shape, drawn)));
    // diffusers encodes the masked image for every UNet; a 4-channel one does not read it.
    const maskedLatents = nine ? hold(await pipeline.encodeImage(run, maskedPixels(pixels, full))) : null;
    if (!nine) run.generator.randn(shape);
    const mask = hold(session.persist(() => pipeline.tensor([1, 1, ...shape.slice(2)], latentMask(full, width, shape, factor))));
    let latents;
    if (strength === 1) {
      const sigma = Math.fround(run.scheduler.initNoiseSigma);
      latents = session.persist(() => pipeline.tensor(shape, sigma === 1 ? drawn : drawn.map((v) => Math.fround(v * sigma))));
    } else {
      latents = run.scheduler.addNoise(/** @type {Tensor} */ (imageLatents), noise, run.scheduler.timesteps[0]);
    }
    if (nine) {
      for (const t of [imageLatents, noise]) t?.dispose();
      return { latents, state: { mask, imageLatents: null, noise: null, maskedLatents, step: 0 } };
    }
    return { latents, state: { mask, imageLatents, noise, maskedLatents: null, step: 0 } };
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
 * @param {InpaintState} state
 * @param {Tensor} latents
 * @returns {Tensor}
 */
function blendStep(pipeline, run, state, latents) {
  const image = /** @type {Tensor} */ (state.imageLatents);
  const timesteps = run.scheduler.timesteps;
  state.step += 1;
  const last = state.step >= timesteps.length;
  const proper = last ? image : run.scheduler.addNoise(image, /** @type {Tensor} */ (state.noise), timesteps[state.step]);
  try {
    return pipeline.session.persist(() => pipeline.model.call("mask_blend", proper, latents, state.mask));
  } finally {
    if (!last) proper.dispose();
    latents.dispose();
  }
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
 * starting latents from the image, and per step either the blend (a 4-channel
 * UNet) or the mask and masked image as the UNet's extra input (9 channels).
 * @template {new (...args: any[]) => SD15Pipeline} Base
 * @param {Base} Base
 */
function inpainting(Base) {
  return class extends Base {
    static optionGroups = Object.freeze([.../** @type {any} */ (Base).optionGroups, "image", "mask"]);

    static encodesImage = true;

    /** @type {InpaintState | null} The running generation's (generations do not overlap). */
    inpaint = null;

    /** Whether the build's UNet is an inpainting checkpoint's (9 channels). */
    get nineChannels() {
      return Object.hasOwn(this.model.manifest.functions, INPAINT_UNET_INPUT);
    }

    /** @param {Run} run */
    strengthOf(run) {
      return run.options.strength ?? defaultStrength(this);
    }

    /** @param {Run} run */
    prepareTimesteps(run) {
      run.scheduler.setTimesteps(run.steps, { strength: run.options.strength ?? defaultStrength(this) });
    }

    /**
     * @param {Run} run
     * @returns {Promise<Tensor>}
     */
    async initialLatents(run) {
      const { latents, state } = await startInpainting(this, run, this.nineChannels);
      this.inpaint = state;
      return latents;
    }

    /**
     * @param {Tensor} input
     * @param {number} t
     * @param {Tensor[]} conditioning
     * @param {number} guidance
     * @returns {Tensor}
     */
    predictNoise(input, t, conditioning, guidance) {
      const state = /** @type {InpaintState} */ (this.inpaint);
      if (!state.maskedLatents) return super.predictNoise(input, t, conditioning, guidance);
      const masked = state.maskedLatents;
      return this.session.persist(() => {
        const pair = this.model.call(INPAINT_UNET_INPUT, input, this.scalar(1), state.mask, masked);
        const pred = this.model.call("unet", pair, this.scalar(t), ...conditioning);
        return this.model.call("cfg_combine", pred, this.scalar(guidance));
      });
    }

    /**
     * @param {Run} run
     * @param {Tensor} latents
     * @param {number} t
     * @param {Tensor[]} conditioning
     * @returns {Tensor}
     */
    denoiseStep(run, latents, t, conditioning) {
      const next = super.denoiseStep(run, latents, t, conditioning);
      const state = /** @type {InpaintState} */ (this.inpaint);
      return state.imageLatents ? blendStep(this, run, state, next) : next;
    }

    /** @param {Run} run */
    endRun(run) {
      const state = this.inpaint;
      this.inpaint = null;
      for (const t of [state?.mask, state?.imageLatents, state?.noise, state?.maskedLatents]) t?.dispose();
      super.endRun(run);
    }
  };
}

/** Inpainting with an SD 1.5 build. */
export class SD15Inpainting extends inpainting(SD15Pipeline) {}

/** Inpainting with an SDXL build. */
export class SDXLInpainting extends inpainting(SDXLPipeline) {}
