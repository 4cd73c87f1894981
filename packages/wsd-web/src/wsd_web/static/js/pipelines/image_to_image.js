// Image to image, as diffusers' StableDiffusionImg2ImgPipeline and
// StableDiffusionXLImg2ImgPipeline do it, on top of a kind's text-to-image
// pipeline: the scheduler's timesteps cut by the strength; the image encoded
// by the build's vae_encode (a sample of the encoder's latent distribution,
// scaled as the pipelines scale it; in tiles by vae_encode_tile where the
// VAE runs in tiles); the noise of the first remaining step
// added by the scheduler. The generator is drawn from in diffusers' order:
// first the encoder's sample, then the added noise.

import { SD15Pipeline } from "./stable_diffusion.js";
import { SDXLPipeline } from "./stable_diffusion_xl.js";

/** @typedef {import("./stable_diffusion.js").Run} Run */
/** @typedef {import("./stable_diffusion.js").Image} Image */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */

/** diffusers' default strength for image to image. */
export const DEFAULT_STRENGTH = 0.8;

/**
 * An image's pixels as the VAE takes them: [1, 3, H, W] float32 in [-1, 1]
 * (diffusers' VaeImageProcessor: x / 255 * 2 - 1; alpha is dropped).
 * @param {Image} image
 * @param {number} height  The build's image height.
 * @param {number} width
 * @returns {Float32Array}
 */
export function imagePixels(image, height, width) {
  if (!image || !ArrayBuffer.isView(image.rgba)) {
    throw new Error("image to image needs an image: RGBA bytes with its width and height");
  }
  if (image.width !== width || image.height !== height) {
    throw new Error(
      `the image is ${image.width}x${image.height} but this build makes ${width}x${height} images; ` +
      `resize it to ${width}x${height}`,
    );
  }
  if (image.rgba.length !== width * height * 4) {
    throw new Error(`the image has ${image.rgba.length} bytes; ${width}x${height} RGBA needs ${width * height * 4}`);
  }
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = Math.fround(Math.fround(image.rgba[4 * i + c] / 255) * 2 - 1);
  }
  return out;
}

/**
 * The timesteps of an image-to-image run: the last `strength` of the schedule.
 * @param {Run} run
 */
function cutTimesteps(run) {
  run.scheduler.setTimesteps(run.steps, { strength: run.options.strength ?? DEFAULT_STRENGTH });
}

/**
 * The encoded image of `run`, noised to its first remaining timestep.
 * Detached; the caller disposes it.
 * @param {SD15Pipeline} pipeline
 * @param {Run} run
 * @returns {Promise<Tensor>}
 */
async function encodedLatents(pipeline, run) {
  const { model, session } = pipeline;
  const { height, width } = model.manifest.image;
  const pixels = imagePixels(/** @type {Image} */ (run.options.image), height, width);
  const shape = model.manifest.latent.shape;
  const encoded = await pipeline.encodeImage(run, pixels);
  /** @type {Tensor | null} */
  let noise = null;
  try {
    noise = session.persist(() => pipeline.tensor(shape, run.generator.randn(shape)));
    return run.scheduler.addNoise(encoded, noise, run.scheduler.timesteps[0]);
  } finally {
    encoded.dispose();
    noise?.dispose();
  }
}

/**
 * The image-to-image steps of a pipeline class: timesteps cut by the strength,
 * starting latents from the encoded image.
 * @template {new (...args: any[]) => SD15Pipeline} Base
 * @param {Base} Base
 */
function imageToImage(Base) {
  return class extends Base {
    static optionGroups = Object.freeze([.../** @type {any} */ (Base).optionGroups, "image"]);

    static encodesImage = true;

    /** @param {Run} run */
    prepareTimesteps(run) {
      cutTimesteps(run);
    }

    /** @param {Run} run */
    strengthOf(run) {
      return run.options.strength ?? DEFAULT_STRENGTH;
    }

    /**
     * @param {Run} run
     * @returns {Promise<Tensor>}
     */
    async initialLatents(run) {
      return encodedLatents(this, run);
    }
  };
}

/** Image to image with an SD 1.5 build. */
export class SD15ImageToImage extends imageToImage(SD15Pipeline) {}

/** Image to image with an SDXL build. */
export class SDXLImageToImage extends imageToImage(SDXLPipeline) {}
