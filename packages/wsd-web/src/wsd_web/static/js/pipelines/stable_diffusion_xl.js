// Text to image with a loaded SDXL build, as diffusers'
// StableDiffusionXLPipeline does it: the SD 1.5 generation
// (stable_diffusion.js) with SDXL's prompt encoding. Both text encoders'
// penultimate states concatenated, the second encoder's projected pooled
// state, zeros for an absent negative prompt (force_zeros_for_empty_prompt),
// and `time_ids` (original size, crop top-left, target size: the
// "micro-conditioning" options) for both halves of the guidance batch.

import { SD15Pipeline } from "./stable_diffusion.js";

/** @typedef {import("../sd_model.js").SDModel} SDModel */
/** @typedef {import("../sd_model.js").Manifest} Manifest */
/** @typedef {import("./stable_diffusion.js").GenerateOptions} GenerateOptions */
/** @typedef {import("./stable_diffusion.js").Tokenizer} Tokenizer */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */

/**
 * SDXL's `time_ids` for one half of the guidance batch, as diffusers'
 * `_get_add_time_ids`: original size, crop top-left, target size.
 * @param {Pick<GenerateOptions, "originalSize" | "cropsCoordsTopLeft" | "targetSize">} options
 * @param {{height: number, width: number}} image
 * @returns {number[]}
 */
export function xlTimeIds(options, image) {
  const size = /** @type {[number, number]} */ ([image.height, image.width]);
  const { originalSize = size, cropsCoordsTopLeft = [0, 0], targetSize = size } = options;
  const pairs = [originalSize, cropsCoordsTopLeft, targetSize];
  const ids = pairs.flat();
  if (!pairs.every((p) => p.length === 2) || !ids.every((v) => Number.isFinite(v) && v >= 0)) {
    throw new Error(
      `originalSize, cropsCoordsTopLeft and targetSize must be pairs of non-negative numbers, got ${JSON.stringify(ids)}`,
    );
  }
  return ids;
}

export class SDXLPipeline extends SD15Pipeline {
  /** @type {ReadonlyArray<"tokenizer" | "tokenizer_2">} */
  static tokenizers = Object.freeze(/** @type {const} */ (["tokenizer", "tokenizer_2"]));

  /** @type {ReadonlyArray<keyof Manifest>} */
  static manifestFields = Object.freeze(/** @type {const} */ (["tokenizer_2", "conditioning"]));

  /** @type {ReadonlyArray<string>} */
  static optionGroups = Object.freeze(["micro-conditioning"]);

  /** @type {ReadonlyArray<string>} */
  static textEncoders = Object.freeze(["text_encoder", "text_encoder_2"]);

  /**
   * @param {SDModel} model
   * @param {Tokenizer} tokenizer
   * @param {Tokenizer} tokenizer2
   * @param {() => number} [now]
   */
  constructor(model, tokenizer, tokenizer2, now) {
    super(model, tokenizer, now);
    this.tokenizer2 = tokenizer2;
  }

  get defaultNegativePrompt() {
    return null;
  }

  /** SDXL's conditioning rules from the manifest. */
  get conditioning() {
    const manifest = this.model.manifest;
    return /** @type {NonNullable<Manifest["conditioning"]>} */ (manifest.conditioning);
  }

  /**
   * One-hot float mask over `ids` at the token the second encoder pools
   * (transformers' CLIP: the largest id for configs with eos_token_id 2,
   * the first EOS otherwise).
   * @param {Int32Array} ids
   * @returns {Float32Array}
   */
  pooledMask(ids) {
    const manifest = this.model.manifest;
    let index = 0;
    if (this.conditioning.pooled_token === "argmax") {
      for (let i = 1; i < ids.length; i++) if (ids[i] > ids[index]) index = i;
    } else {
      const eos = /** @type {NonNullable<Manifest["tokenizer_2"]>} */ (manifest.tokenizer_2).eos_token_id;
      index = ids.indexOf(eos);
      if (index < 0) throw new Error(`the second tokenizer's ids have no EOS (${eos}) to pool`);
    }
    const mask = new Float32Array(ids.length);
    mask[index] = 1;
    return mask;
  }

  /**
   * One prompt through both text encoders, in the current scope: the
   * concatenated hidden states and the pooled embedding.
   * @param {string} text
   * @returns {{hidden: Tensor, pooled: Tensor}}
   */
  encodeText(text) {
    const model = this.model;
    const ids2 = this.tokenizer2.encode(text);
    const second = model.call(
      "text_encoder_2", this.tensor([1, ids2.length], ids2, "int32"), this.tensor([1, ids2.length], this.pooledMask(ids2)),
    );
    const hidden = model.call("text_concat", model.call("text_encoder", this.ids(this.tokenizer, text)), second.get(0));
    return { hidden, pooled: second.get(1) };
  }

  /**
   * The time ids of both halves of the guidance batch, as wide as the build's UNet takes them.
   * @param {Pick<GenerateOptions, "originalSize" | "cropsCoordsTopLeft" | "targetSize">} options
   * @returns {Float32Array}
   */
  batchTimeIds(options) {
    const ids = xlTimeIds(options, this.model.manifest.image);
    const width = this.conditioning.time_ids_dim;
    if (ids.length !== width) {
      throw new Error(
        `this build's UNet takes ${width} time ids, diffusers' SDXL makes ${ids.length}: rebuild the model with wsd-compile sdxl`,
      );
    }
    return Float32Array.from([...ids, ...ids]);
  }

  /**
   * The UNet's conditioning after the timestep: prompt embeddings, pooled
   * text embeddings and time ids, each for the guidance batch (negative first).
   * Detached; the caller disposes them.
   * @param {GenerateOptions} options
   * @returns {Tensor[]}
   */
  encodePrompt(options) {
    const { prompt, negativePrompt } = options;
    const model = this.model;
    const zeros = (/** @type {number[]} */ shape) => this.tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const noNegative = negativePrompt === null || negativePrompt === undefined || negativePrompt === "";
    const timeIds = this.batchTimeIds(options);
    return this.session.persistAll(() => {
      const pos = this.encodeText(prompt);
      const neg = noNegative && this.conditioning.force_zeros_for_empty_prompt
        ? { hidden: zeros(pos.hidden.shape), pooled: zeros(pos.pooled.shape) }
        : this.encodeText(noNegative ? "" : /** @type {string} */ (negativePrompt));
      return [
        model.call("cfg_embeddings", neg.hidden, pos.hidden),
        model.call("cfg_text_embeds", neg.pooled, pos.pooled),
        this.tensor([2, this.conditioning.time_ids_dim], timeIds),
      ];
    });
  }
}
