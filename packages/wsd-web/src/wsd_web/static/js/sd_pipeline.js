// Text to image with a loaded SD 1.5 or SDXL build, the way diffusers'
// StableDiffusionPipeline / StableDiffusionXLPipeline do it: tokenize -> text
// encoder(s) (negative and positive) -> UNet loop with classifier-free
// guidance and the chosen scheduler -> VAE -> RGBA pixels. Every tensor stays
// on the GPU until the final pixels (and, on request, the final latents) are
// read back.
//
// Ownership: each generation owns its embeddings, latents and scheduler, and
// releases them all when it ends, however it ends; per-call temporaries live
// in a tvm scope that closes with the call.

import { ClipTokenizer } from "./clip_tokenizer.js";
import { SCHEDULERS, createScheduler } from "./schedulers/index.js";
import { TorchGenerator } from "./torch_random.js";

/** @typedef {import("./tvm_session.js").TVMJS} TVMJS */

/** @typedef {import("./sd_model.js").SDModel} SDModel */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */

/**
 * @typedef {object} GenerateOptions
 * @property {string} prompt
 * @property {string | null} [negativePrompt]  SD 1.5: "" (the default) is diffusers' unconditional
 *   prompt. SDXL: null, undefined or "" is no negative prompt (diffusers' `negative_prompt=None`:
 *   zero embeddings when the model sets force_zeros_for_empty_prompt).
 * @property {number | bigint} [seed]  torch.Generator().manual_seed(seed) noise.
 * @property {number} [steps]
 * @property {number} [guidance]  Classifier-free guidance scale.
 * @property {string} [scheduler]  A name of the scheduler registry; default: the model's own.
 * @property {number} [previewEvery]  Decode a preview every N steps (0: never).
 * @property {boolean} [returnLatents]  Also read back the final latents (for debugging, parity tests).
 * @property {AbortSignal} [signal]  Cancels between steps.
 * @property {[number, number]} [originalSize]  SDXL micro-conditioning (height, width); default: the image size.
 * @property {[number, number]} [cropsCoordsTopLeft]  SDXL (top, left); default [0, 0].
 * @property {[number, number]} [targetSize]  SDXL (height, width); default: the image size.
 */

/**
 * @typedef {object} Image
 * @property {Uint8ClampedArray} rgba  height * width * 4 bytes, ready for ImageData.
 * @property {number} width
 * @property {number} height
 */

/**
 * @typedef {object} Timings
 * @property {number} textEncoderMs  Both prompts through the text encoder(s).
 * @property {number[]} unetStepMs  Each denoising step: UNet, guidance and scheduler update.
 * @property {number} vaeMs  VAE decode and conversion to pixels, with the read-back.
 * @property {number} totalMs
 */

/**
 * @typedef {Image & {timings: Timings, scheduler: string, latents?: Float32Array}} Generation
 */

/**
 * @typedef {object} GenerateHooks
 * @property {(p: {step: number, total: number, ms: number}) => void} [onStep]
 * @property {(image: Image & {step: number}) => void} [onPreview]
 */

/** diffusers scheduler classes and the registry name that reproduces each. */
const DEFAULT_SCHEDULERS = Object.freeze({
  PNDMScheduler: "pndm",
  DPMSolverMultistepScheduler: "dpmpp-2m",
  DDIMScheduler: "ddim",
  EulerDiscreteScheduler: "euler",
  EulerAncestralDiscreteScheduler: "euler-a",
  LCMScheduler: "lcm",
});

/**
 * The registry name of the scheduler a model's config names (what diffusers would run).
 * @param {{class_name: string, config: Record<string, unknown>}} scheduler
 * @returns {string}
 */
export function defaultSchedulerName(scheduler) {
  if (scheduler.class_name === "DPMSolverMultistepScheduler" && scheduler.config.use_karras_sigmas) {
    return "dpmpp-2m-karras";
  }
  const name = DEFAULT_SCHEDULERS[/** @type {keyof typeof DEFAULT_SCHEDULERS} */ (scheduler.class_name)];
  // A class the app does not implement: the most broadly useful solver instead.
  return name ?? "dpmpp-2m";
}

/**
 * The registry names that can run a model with this scheduler config (a
 * scheduler that refuses the config, e.g. its prediction type, is left out).
 * @param {Record<string, unknown>} config
 * @returns {string[]}
 */
export function availableSchedulers(config) {
  /** @type {import("./schedulers/common.js").TensorOps<null>} */
  const none = { combine: () => null, release: () => {}, noise: () => null };
  return Object.keys(SCHEDULERS).filter((name) => {
    try {
      createScheduler(name, config, none).dispose();
      return true;
    } catch {
      return false;
    }
  });
}

/** A generation was cancelled through its AbortSignal. */
export class CancelledError extends Error {
  constructor() {
    super("generation cancelled");
    this.name = "CancelledError";
  }
}

/**
 * A float32 GPU tensor in the current tvm scope.
 * @param {SDModel} model
 * @param {number[]} shape
 * @param {Float32Array | Int32Array} values
 * @param {string} [dtype]
 * @returns {Tensor}
 */
function gpuTensor(model, shape, values, dtype = "float32") {
  const tvm = model.session.tvm;
  return tvm.empty(shape, dtype, tvm.webgpu()).copyFrom(values);
}

/**
 * The schedulers' tensor operations on the GPU: linear combinations through
 * the compiled combineK kernels, the clamp kernel, noise of `shape` from
 * `generator` (uploaded).
 * Every tensor returned is detached from tvm scopes; its owner disposes it.
 * @param {SDModel} model
 * @param {number[]} shape  The latent shape.
 * @param {TorchGenerator} generator
 * @returns {import("./schedulers/common.js").TensorOps<Tensor>}
 */
export function gpuTensorOps(model, shape, generator) {
  const session = model.session;
  return {
    combine: (terms) => session.persist(() => {
      const coeffs = gpuTensor(model, [terms.length], Float32Array.from(terms, ([c]) => c));
      return model.call(`combine${terms.length}`, ...terms.map(([, x]) => x), coeffs);
    }),
    release: (t) => t.dispose(),
    noise: () => session.persist(() => gpuTensor(model, shape, generator.randn(shape))),
    clamp: (t, limit) => session.persist(() => model.call("clamp", t, gpuTensor(model, [1], new Float32Array([limit])))),
  };
}

/**
 * @param {Uint8Array} bytes
 * @param {number} width
 * @param {number} height
 * @returns {Image}
 */
function image(bytes, width, height) {
  return { rgba: new Uint8ClampedArray(bytes.buffer, bytes.byteOffset, bytes.byteLength), width, height };
}

export class SD15Pipeline {
  /**
   * @param {SDModel} model
   * @param {{encode(text: string): Int32Array}} tokenizer
   * @param {() => number} [now]
   */
  constructor(model, tokenizer, now = () => performance.now()) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.now = now;
  }

  get session() {
    return this.model.session;
  }

  /**
   * A float32 GPU tensor in the current scope.
   * @param {number[]} shape
   * @param {Float32Array | Int32Array} values
   * @param {string} [dtype]
   * @returns {Tensor}
   */
  tensor(shape, values, dtype = "float32") {
    return gpuTensor(this.model, shape, values, dtype);
  }

  /** @param {number} v */
  scalar(v) {
    return this.tensor([1], new Float32Array([v]));
  }

  /** Wait until the GPU has finished what was submitted. */
  async sync() {
    await this.session.tvm.webgpu().sync();
  }

  /**
   * The pixels of latents (not consumed).
   * @param {Tensor} latents
   * @returns {Promise<Image>}
   */
  async decode(latents) {
    const { height, width } = this.model.manifest.image;
    const pixels = this.session.persist(() =>
      this.model.call("image_to_rgba", this.model.call("vae_decode", latents)),
    );
    try {
      return image(await this.session.downloadBytes(pixels), width, height);
    } finally {
      pixels.dispose();
    }
  }

  /** The negative prompt when none is given. */
  get defaultNegativePrompt() {
    return /** @type {string | null} */ ("");
  }

  /**
   * Token ids of `text` as an int32 GPU tensor in the current scope.
   * @param {{encode(text: string): Int32Array}} tokenizer
   * @param {string} text
   */
  ids(tokenizer, text) {
    const encoded = tokenizer.encode(text);
    return this.tensor([1, encoded.length], encoded, "int32");
  }

  /**
   * The UNet's conditioning after the timestep, for the guidance batch
   * (negative first): SD 1.5's text embeddings. Detached; the caller disposes them.
   * @param {GenerateOptions} options
   * @returns {Tensor[]}
   */
  encodePrompts({ prompt, negativePrompt }) {
    const model = this.model;
    const encode = (/** @type {string} */ text) => model.call("text_encoder", this.ids(this.tokenizer, text));
    return [this.session.persist(() => model.call("cfg_embeddings", encode(negativePrompt ?? ""), encode(prompt)))];
  }

  /**
   * Generate one image.
   * @param {GenerateOptions} options
   * @param {GenerateHooks} [hooks]
   * @returns {Promise<Generation>}
   */
  async generate(options, hooks = {}) {
    const {
      prompt, negativePrompt = this.defaultNegativePrompt, seed = 0, steps = 20, guidance = 7.5,
      previewEvery = 0, returnLatents = false, signal,
    } = options;
    const manifest = this.model.manifest;
    const schedulerName = options.scheduler ?? defaultSchedulerName(manifest.scheduler);
    const session = this.session;
    const model = this.model;
    const start = this.now();
    const shape = manifest.latent.shape;
    // One generator per generation, as diffusers' `generator`: the initial
    // latents first, then whatever noise the scheduler draws in its steps.
    const generator = new TorchGenerator(seed);
    const ops = gpuTensorOps(model, shape, generator);
    const scheduler = createScheduler(schedulerName, manifest.scheduler.config, ops);
    /** @type {Tensor[]} */
    let conditioning = [];
    /** @type {Tensor | null} */
    let latents = null;
    try {
      scheduler.setTimesteps(steps);
      conditioning = this.encodePrompts({ ...options, prompt, negativePrompt });
      await this.sync();
      const textEncoderMs = this.now() - start;

      const noise = generator.randn(shape);
      const sigma = Math.fround(scheduler.initNoiseSigma);
      if (sigma !== 1) for (let i = 0; i < noise.length; i++) noise[i] = Math.fround(noise[i] * sigma);
      latents = session.persist(() => this.tensor(shape, noise));

      /** @type {number[]} */
      const unetStepMs = [];
      const timesteps = scheduler.timesteps;
      for (let i = 0; i < timesteps.length; i++) {
        if (signal?.aborted) throw new CancelledError();
        const stepStart = this.now();
        const t = timesteps[i];
        const current = /** @type {Tensor} */ (latents);
        const input = scheduler.scaleModelInput(current, t);
        const guided = session.persist(() => {
          const pair = model.call("unet_input", input, this.scalar(1));
          const pred = model.call("unet", pair, this.scalar(t), ...conditioning);
          return model.call("cfg_combine", pred, this.scalar(guidance));
        });
        if (input !== current) input.dispose();
        try {
          latents = scheduler.step(guided, t, current);
        } finally {
          guided.dispose();
        }
        current.dispose();
        await this.sync();
        unetStepMs.push(this.now() - stepStart);
        hooks.onStep?.({ step: i + 1, total: timesteps.length, ms: unetStepMs[i] });
        if (previewEvery > 0 && (i + 1) % previewEvery === 0 && i + 1 < timesteps.length) {
          hooks.onPreview?.({ ...(await this.decode(latents)), step: i + 1 });
        }
      }

      const vaeStart = this.now();
      const final = await this.decode(/** @type {Tensor} */ (latents));
      const vaeMs = this.now() - vaeStart;
      const latentValues = returnLatents ? await session.download(/** @type {Tensor} */ (latents)) : undefined;
      return {
        ...final,
        scheduler: schedulerName,
        timings: { textEncoderMs, unetStepMs, vaeMs, totalMs: this.now() - start },
        ...(latentValues ? { latents: latentValues } : {}),
      };
    } finally {
      for (const c of conditioning) c.dispose();
      latents?.dispose();
      scheduler.dispose();
    }
  }
}

/**
 * SDXL, as diffusers' StableDiffusionXLPipeline: both text encoders'
 * penultimate states concatenated, the second encoder's projected pooled
 * state, zeros for an absent negative prompt (force_zeros_for_empty_prompt),
 * and `time_ids` (original size, crop top-left, target size) for both halves
 * of the guidance batch.
 */
export class SDXLPipeline extends SD15Pipeline {
  /**
   * @param {SDModel} model
   * @param {{encode(text: string): Int32Array}} tokenizer
   * @param {{encode(text: string): Int32Array}} tokenizer2
   * @param {() => number} [now]
   */
  constructor(model, tokenizer, tokenizer2, now) {
    super(model, tokenizer, now);
    this.tokenizer2 = tokenizer2;
  }

  get defaultNegativePrompt() {
    return null;
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
    const rule = manifest.conditioning?.pooled_token;
    let index = 0;
    if (rule === "argmax") {
      for (let i = 1; i < ids.length; i++) if (ids[i] > ids[index]) index = i;
    } else {
      const eos = /** @type {NonNullable<typeof manifest.tokenizer_2>} */ (manifest.tokenizer_2).eos_token_id;
      index = ids.indexOf(eos);
      if (index < 0) throw new Error(`the second tokenizer's ids have no EOS (${eos}) to pool`);
    }
    const mask = new Float32Array(ids.length);
    mask[index] = 1;
    return mask;
  }

  /**
   * The UNet's conditioning after the timestep: prompt embeddings, pooled
   * text embeddings and time ids, each for the guidance batch (negative first).
   * Detached; the caller disposes them.
   * @param {GenerateOptions} options
   * @returns {Tensor[]}
   */
  encodePrompts(options) {
    const { prompt, negativePrompt } = options;
    const manifest = this.model.manifest;
    const cond = /** @type {NonNullable<typeof manifest.conditioning>} */ (manifest.conditioning);
    const model = this.model;
    const session = this.session;
    const encode = (/** @type {string} */ text) => {
      const ids2 = this.tokenizer2.encode(text);
      const second = model.call(
        "text_encoder_2", this.tensor([1, ids2.length], ids2, "int32"), this.tensor([1, ids2.length], this.pooledMask(ids2)),
      );
      const hidden = model.call("text_concat", model.call("text_encoder", this.ids(this.tokenizer, text)), second.get(0));
      return { hidden, pooled: second.get(1) };
    };
    const zeros = (/** @type {number[]} */ shape) => this.tensor(shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    const noNegative = negativePrompt === null || negativePrompt === undefined || negativePrompt === "";
    const timeIds = xlTimeIds(options, manifest.image);
    return session.tvm.withNewScope(() => {
      const pos = encode(prompt);
      const neg = noNegative && cond.force_zeros_for_empty_prompt
        ? { hidden: zeros(pos.hidden.shape), pooled: zeros(pos.pooled.shape) }
        : encode(noNegative ? "" : /** @type {string} */ (negativePrompt));
      const out = [
        model.call("cfg_embeddings", neg.hidden, pos.hidden),
        model.call("cfg_text_embeds", neg.pooled, pos.pooled),
        this.tensor([2, timeIds.length], Float32Array.from([...timeIds, ...timeIds])),
      ];
      return out.map((t) => session.tvm.detachFromCurrentScope(t));
    });
  }
}

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
  const ids = [...originalSize, ...cropsCoordsTopLeft, ...targetSize];
  if (ids.length !== 6 || !ids.every((v) => Number.isFinite(v) && v >= 0)) {
    throw new Error(
      `originalSize, cropsCoordsTopLeft and targetSize must be pairs of non-negative numbers, got ${JSON.stringify(ids)}`,
    );
  }
  return ids;
}

/**
 * The pipeline for a loaded model, by its manifest's kind, with its tokenizer(s).
 * @param {SDModel} model
 * @param {any} tokenizers  The vendored web-tokenizers module.
 * @param {(path: string) => Promise<Uint8Array>} fetchBytes  Files of the model directory.
 * @returns {Promise<SD15Pipeline>}
 */
export async function createPipeline(model, tokenizers, fetchBytes) {
  const m = model.manifest;
  /** @param {import("./sd_model.js").TokenizerEntry} t */
  const load = async (t) => ClipTokenizer.create(tokenizers, (await fetchBytes(t.file)).slice().buffer, {
    maxLength: t.max_length, bosTokenId: t.bos_token_id, eosTokenId: t.eos_token_id, padTokenId: t.pad_token_id,
  });
  const tokenizer = await load(m.tokenizer);
  if (m.kind === "sdxl") {
    return new SDXLPipeline(model, tokenizer, await load(/** @type {import("./sd_model.js").TokenizerEntry} */ (m.tokenizer_2)));
  }
  return new SD15Pipeline(model, tokenizer);
}
