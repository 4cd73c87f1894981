// Text to image with a loaded SD 1.5 build, as diffusers'
// StableDiffusionPipeline does it, and the generation every pipeline shares.
// `generate` reads as diffusers' `__call__`, one method per step: the
// scheduler's timesteps, encodePrompt (tokenize, text encoder, negative and
// positive), prepareLatents (seeded noise), denoise (UNet with
// classifier-free guidance, scheduler step), decode (VAE, RGBA pixels). A
// kind overrides what differs (stable_diffusion_xl.js: encodePrompt); a task
// overrides its steps (image-to-image: prepareTimesteps with a strength,
// prepareLatents from the encoded image and scheduler.addNoise). Every tensor
// stays on the GPU until the final pixels (and, on request, the final
// latents) are read back.
//
// Ownership: each generation owns its embeddings, latents and scheduler, and
// releases them all when it ends, however it ends; per-call temporaries live
// in a tvm scope that closes with the call.

import { createScheduler } from "../schedulers/index.js";
import { TorchGenerator } from "../torch_random.js";
import { decodeInTiles, encodeInTiles, tilePlan } from "../vae_tiling.js";
import { defaultSchedulerName, gpuTensorOps } from "./scheduling.js";

/** @typedef {import("../sd_model.js").SDModel} SDModel */
/** @typedef {import("../sd_model.js").Manifest} Manifest */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */
/** @typedef {import("../schedulers/index.js").Scheduler<Tensor>} Scheduler */
/** @typedef {{encode(text: string): Int32Array}} Tokenizer */

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
 * @property {boolean} [offload]  Sequential offload from this generation on (weights.js): the text
 *   encoders' and the VAE decoder's weights are on the GPU only while they run. Default: as it was.
 * @property {number} [memoryBudget]  GPU bytes: offload and tiles, where not given, are chosen so
 *   that the generation fits (memory_plan.js); a build that cannot fit fails before the steps.
 * @property {"auto" | "on" | "off"} [vaeTiling]  Decode the latents in overlapping tiles (bounded
 *   memory at any size): "auto" (the default) where the device cannot bind the untiled decoder's
 *   largest buffer; "on" needs a build with vae_tiling.
 * @property {Image} [image]  Image to image: the image to start from, at the build's size.
 * @property {Image} [mask]  Inpainting: white (grayscale >= 0.5) where the image is repainted, at its size.
 * @property {number} [strength]  Image to image: how much of the schedule runs, in (0, 1]
 *   (diffusers' strength; default 0.8): 1 ignores the image's content, small values keep it.
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
 * @typedef {object} StagePeaks  The most GPU bytes held during each stage (weights included).
 * @property {number} textEncoder
 * @property {number} denoise
 * @property {number} decode
 */

/**
 * @typedef {Image & {timings: Timings, scheduler: string, vaeTiles: number, vaeEncodeTiles: number, offload: boolean,
 *   peakBytes: StagePeaks, memoryNeedBytes: number | null, latents?: Float32Array, settings: Settings}} Generation
 *   vaeTiles: the tiles the image was decoded in (0: decoded whole); vaeEncodeTiles: the tiles the
 *   start image was encoded in (0: encoded whole, or no image); offload: whether it ran with
 *   sequential offload; memoryNeedBytes: what the build reckons its modes need (memory_plan.js);
 *   settings: what it ran with, defaults filled in.
 */

/**
 * @typedef {object} Settings
 * @property {string} prompt
 * @property {string} negativePrompt
 * @property {string} seed
 * @property {number} steps
 * @property {number} guidance
 * @property {number | null} strength  Image to image and inpainting; null for text to image.
 */

/**
 * @typedef {object} GenerateHooks
 * @property {(p: {step: number, total: number, ms: number}) => void} [onStep]
 * @property {(image: Image & {step: number}) => void} [onPreview]
 */

/**
 * One generation: its options with their defaults, its generator and scheduler.
 * @typedef {object} Run
 * @property {GenerateOptions} options
 * @property {number} steps
 * @property {number} guidance
 * @property {number} previewEvery
 * @property {string} schedulerName
 * @property {TorchGenerator} generator  As diffusers' `generator`: the initial latents first,
 *   then whatever noise the scheduler draws in its steps.
 * @property {Scheduler} scheduler
 * @property {boolean} vaeTiles  Run the VAE in tiles (decode; encode where the build can).
 * @property {number} vaeEncodeTiles  The tiles the run's image was encoded in (0: none or whole).
 * @property {number | null} memoryNeed  The GPU bytes the build reckons the run's modes need.
 */

/** A generation was cancelled through its AbortSignal. */
export class CancelledError extends Error {
  constructor() {
    super("generation cancelled");
    this.name = "CancelledError";
  }
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
   * The manifest's tokenizer entries the constructor takes, in its order.
   * @type {ReadonlyArray<"tokenizer" | "tokenizer_2">}
   */
  static tokenizers = Object.freeze(/** @type {const} */ (["tokenizer"]));

  /**
   * Manifest fields, optional in the schema, that this pipeline reads.
   * @type {ReadonlyArray<keyof Manifest>}
   */
  static manifestFields = Object.freeze([]);

  /**
   * The groups of options beyond the common ones that this pipeline takes (the page shows their controls).
   * @type {ReadonlyArray<string>}
   */
  static optionGroups = Object.freeze([]);

  /**
   * The text encoder functions encodePrompt calls (with offload, their weights are on the GPU only then).
   * @type {ReadonlyArray<string>}
   */
  static textEncoders = Object.freeze(["text_encoder"]);

  /** Whether a generation encodes an image (the VAE encoder's weights and memory count then). */
  static encodesImage = false;

  /**
   * @param {SDModel} model
   * @param {Tokenizer} tokenizer
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
   * A GPU tensor in the current scope (the session's).
   * @param {number[]} shape
   * @param {Float32Array | Int32Array} values  In the order of `shape`, row-major.
   * @param {string} [dtype]  "float32" unless given.
   * @returns {Tensor}
   */
  tensor(shape, values, dtype = "float32") {
    return this.session.tensor(shape, values, dtype);
  }

  /** @param {number} v */
  scalar(v) {
    return this.tensor([1], new Float32Array([v]));
  }

  /** Wait until the GPU has finished what was submitted. */
  async sync() {
    await this.session.sync();
  }

  /** The negative prompt when none is given. */
  get defaultNegativePrompt() {
    return /** @type {string | null} */ ("");
  }

  /**
   * Token ids of `text` as an int32 GPU tensor in the current scope.
   * @param {Tokenizer} tokenizer
   * @param {string} text
   */
  ids(tokenizer, text) {
    const encoded = tokenizer.encode(text);
    return this.tensor([1, encoded.length], encoded, "int32");
  }

  /**
   * A generation's settings, generator and scheduler.
   * @param {GenerateOptions} options
   * @returns {Run}
   */
  begin(options) {
    const { negativePrompt = this.defaultNegativePrompt, seed = 0, steps = 20, guidance = 7.5, previewEvery = 0 } = options;
    const manifest = this.model.manifest;
    const schedulerName = options.scheduler ?? defaultSchedulerName(manifest.scheduler);
    const generator = new TorchGenerator(seed);
    const ops = gpuTensorOps(this.model, manifest.latent.shape, generator);
    const scheduler = createScheduler(schedulerName, manifest.scheduler.config, ops);
    const memory = this.model.memoryMode({
      vaeTiling: options.vaeTiling, offload: options.offload, budget: options.memoryBudget,
      encode: /** @type {typeof SD15Pipeline} */ (this.constructor).encodesImage,
    });
    this.model.weights.setOffload(memory.offload);
    const vaeTiles = memory.tiles;
    return {
      options: { ...options, negativePrompt }, steps, guidance, previewEvery, schedulerName, generator, scheduler, vaeTiles,
      vaeEncodeTiles: 0, memoryNeed: memory.need,
    };
  }

  /**
   * The timesteps the run goes through.
   * @param {Run} run
   */
  prepareTimesteps(run) {
    run.scheduler.setTimesteps(run.steps);
  }

  /**
   * The UNet's conditioning after the timestep, for the guidance batch
   * (negative first): SD 1.5's text embeddings. Detached; the caller disposes them.
   * @param {GenerateOptions} options
   * @returns {Tensor[]}
   */
  encodePrompt({ prompt, negativePrompt }) {
    const model = this.model;
    const encode = (/** @type {string} */ text) => model.call("text_encoder", this.ids(this.tokenizer, text));
    return [this.session.persist(() => model.call("cfg_embeddings", encode(negativePrompt ?? ""), encode(prompt)))];
  }

  /**
   * The latents the denoising starts from: the generator's first draw, scaled
   * by the scheduler's initial sigma. Detached; the caller disposes them.
   * @param {Run} run
   * @returns {Tensor}
   */
  prepareLatents(run) {
    const shape = this.model.manifest.latent.shape;
    const noise = run.generator.randn(shape);
    const sigma = Math.fround(run.scheduler.initNoiseSigma);
    if (sigma !== 1) for (let i = 0; i < noise.length; i++) noise[i] = Math.fround(noise[i] * sigma);
    return this.session.persist(() => this.tensor(shape, noise));
  }

  /**
   * The latents the denoising loop starts from (a task that encodes an image
   * overrides this, with the encoder's weights on the GPU). Detached; the
   * denoising loop consumes them.
   * @param {Run} run
   * @returns {Promise<Tensor>}
   */
  async initialLatents(run) {
    return this.prepareLatents(run);
  }

  /**
   * The strength a run denoises with (null: text to image, which has none).
   * @param {Run} _run
   * @returns {number | null}
   */
  strengthOf(_run) {
    return null;
  }

  /**
   * Release what a run holds once its generation has ended, finished or not
   * (a task that keeps tensors through the loop releases them too).
   * @param {Run} run
   */
  endRun(run) {
    run.scheduler.dispose();
  }

  /**
   * The guided noise prediction for `input` at timestep `t`: the UNet on both
   * halves of the guidance batch, combined. Detached; the caller disposes it.
   * @param {Tensor} input
   * @param {number} t
   * @param {Tensor[]} conditioning
   * @param {number} guidance
   * @returns {Tensor}
   */
  predictNoise(input, t, conditioning, guidance) {
    const model = this.model;
    return this.session.persist(() => {
      const pair = model.call("unet_input", input, this.scalar(1));
      const pred = model.call("unet", pair, this.scalar(t), ...conditioning);
      return model.call("cfg_combine", pred, this.scalar(guidance));
    });
  }

  /**
   * One denoising step: the latents after timestep `t` (new; `latents` stays the caller's).
   * @param {Run} run
   * @param {Tensor} latents
   * @param {number} t
   * @param {Tensor[]} conditioning
   * @returns {Tensor}
   */
  denoiseStep(run, latents, t, conditioning) {
    const input = run.scheduler.scaleModelInput(latents, t);
    /** @type {Tensor} */
    let guided;
    try {
      guided = this.predictNoise(input, t, conditioning, run.guidance);
    } finally {
      if (input !== latents) input.dispose();
    }
    try {
      return run.scheduler.step(guided, t, latents);
    } finally {
      guided.dispose();
    }
  }

  /**
   * The denoising loop over the scheduler's timesteps, with previews and
   * cancellation between steps. It consumes `latents` and returns the final
   * ones (the caller's) with each step's time.
   *
   * One step ahead: each step is recorded and submitted before the loop
   * waits for the one before it, so the GPU starts a step as it ends the
   * last instead of idling while the CPU waits for it and then records the
   * next (the queue runs them in order, and a buffer freed by a step is
   * reused only by work queued after it). A step's time is from the end of
   * the one before it (the first's: from the loop's start) to its own end;
   * `onStep` reports it when the loop has waited for it, a step later, and
   * a cancellation seen then stops the loop with the next step recorded.
   * @param {Run} run
   * @param {Tensor} latents
   * @param {Tensor[]} conditioning
   * @param {GenerateHooks} hooks
   * @returns {Promise<{latents: Tensor, unetStepMs: number[]}>}
   */
  async denoise(run, latents, conditioning, hooks) {
    const timesteps = run.scheduler.timesteps;
    /** @type {number[]} */
    const unetStepMs = [];
    let current = latents;
    let ended = this.now();
    /** @type {Promise<unknown> | null} The last step recorded, not yet waited for. */
    let inFlight = null;
    const finish = async () => {
      await inFlight;
      inFlight = null;
      const now = this.now();
      unetStepMs.push(now - ended);
      ended = now;
      const step = unetStepMs.length;
      hooks.onStep?.({ step, total: timesteps.length, ms: unetStepMs[step - 1] });
    };
    try {
      for (let i = 0; i < timesteps.length; i++) {
        if (run.options.signal?.aborted) throw new CancelledError();
        const next = this.denoiseStep(run, current, timesteps[i], conditioning);
        current.dispose();
        current = next;
        const done = this.session.submitted();
        if (inFlight) await finish();
        inFlight = done;
        if (run.previewEvery > 0 && (i + 1) % run.previewEvery === 0 && i + 1 < timesteps.length) {
          await finish();
          hooks.onPreview?.({ ...(await this.decode(current, run.vaeTiles)), step: i + 1 });
          ended = this.now();
        }
      }
      if (inFlight) await finish();
      return { latents: current, unetStepMs };
    } catch (e) {
      current.dispose();
      throw e;
    }
  }

  /**
   * The pixels of latents (not consumed), decoded whole or in tiles.
   * @param {Tensor} latents
   * @param {boolean} [tiles]
   * @returns {Promise<Image & {tiles: number}>}
   */
  async decode(latents, tiles = false) {
    return this.model.withWeights(["vae_decode"], () => this.decodeWith(latents, tiles));
  }

  /**
   * decode, with the decoder's weights on the GPU.
   * @param {Tensor} latents
   * @param {boolean} tiles
   * @returns {Promise<Image & {tiles: number}>}
   */
  async decodeWith(latents, tiles) {
    const { height, width } = this.model.manifest.image;
    const decoded = tiles ? await this.decodeTiles(latents) : null;
    const pixels = this.session.persist(() => this.model.call(
      "image_to_rgba",
      decoded ? this.tensor([1, 3, height, width], decoded.image) : this.model.call("vae_decode", latents),
    ));
    try {
      return { ...image(await this.session.downloadBytes(pixels), width, height), tiles: decoded?.count ?? 0 };
    } finally {
      pixels.dispose();
    }
  }

  /**
   * The image of latents decoded in tiles by the build's tile decoder and
   * blended (vae_tiling.js), as float32 [1, 3, H, W] values; one tile on the GPU at a time.
   * @param {Tensor} latents
   * @returns {Promise<{image: Float32Array, count: number}>}
   */
  async decodeTiles(latents) {
    const { latent, vae_tiling: tiling } = this.model.manifest;
    if (!tiling) throw new Error("this build cannot decode in tiles: rebuild it with the current wsd-compile");
    const shape = latent.shape;
    const plan = tilePlan(shape[2], shape[3], tiling);
    const tileShape = [shape[0], shape[1], ...plan.tile];
    const decodeTile = async (/** @type {Float32Array} */ values) => {
      const out = this.session.persist(() => this.model.call(tiling.function, this.tensor(tileShape, values)));
      try {
        return await this.session.download(out);
      } finally {
        out.dispose();
      }
    };
    const values = await this.session.download(latents);
    const image = await decodeInTiles({ latents: values, shape, plan, factor: latent.vae_scale_factor, decodeTile });
    return { image, count: plan.rows.length * plan.cols.length };
  }

  /**
   * A sample of the VAE encoder's latent distribution for an image, scaled as the
   * pipelines scale it, with the generator's next draw as its noise: encoded whole,
   * or, where the run's VAE runs in tiles and the build can encode in tiles, in
   * overlapping tiles whose latents are blended (vae_tiling.js; one tile on the GPU
   * at a time). Detached; the caller disposes it.
   * @param {Run} run
   * @param {Float32Array} pixels  [1, 3, H, W] in [-1, 1].
   * @returns {Promise<Tensor>}
   */
  async encodeImage(run, pixels) {
    const { image: { height, width }, latent: { shape, vae_scale_factor: factor }, vae_tiling: tiling } = this.model.manifest;
    const encoder = run.vaeTiles ? tiling?.encode_function : undefined;
    return this.model.withWeights(["vae_encode"], async () => {
      const noise = run.generator.randn(shape);
      if (!encoder || !tiling) {
        return this.session.persist(() => this.model.call(
          "vae_encode", this.tensor([1, 3, height, width], pixels), this.tensor(shape, noise),
        ));
      }
      const plan = tilePlan(shape[2], shape[3], tiling);
      const [th, tw] = plan.tile;
      const encodeTile = async (/** @type {Float32Array} */ tilePixels, /** @type {Float32Array} */ tileNoise) => {
        const out = this.session.persist(() => this.model.call(
          encoder, this.tensor([1, 3, th * factor, tw * factor], tilePixels), this.tensor([1, shape[1], th, tw], tileNoise),
        ));
        try {
          return await this.session.download(out);
        } finally {
          out.dispose();
        }
      };
      const latents = await encodeInTiles({ pixels, noise, shape, plan, factor, encodeTile });
      run.vaeEncodeTiles = plan.rows.length * plan.cols.length;
      return this.session.persist(() => this.tensor(shape, latents));
    });
  }

  /**
   * Generate one image.
   * @param {GenerateOptions} options
   * @param {GenerateHooks} [hooks]
   * @returns {Promise<Generation>}
   */
  async generate(options, hooks = {}) {
    const start = this.now();
    // 1. Settings, generator and scheduler.
    const run = this.begin(options);
    /** @type {Tensor[]} */
    let conditioning = [];
    /** @type {Tensor | null} */
    let latents = null;
    try {
      // 2. Timesteps.
      this.prepareTimesteps(run);
      // 3. Prompt embeddings (with offload, the text encoders' weights are on the GPU for this only).
      const session = this.session;
      const encoded = await session.peakDuring(() => this.model.withWeights(
        /** @type {typeof SD15Pipeline} */ (this.constructor).textEncoders,
        async () => this.encodePrompt(run.options),
      ));
      conditioning = encoded.result;
      await this.sync();
      const textEncoderMs = this.now() - start;
      // 4. Initial latents; 5. the denoising loop, which consumes them.
      const initial = await this.initialLatents(run);
      const denoised = await session.peakDuring(() => this.model.withWeights(
        ["unet"], () => this.denoise(run, initial, conditioning, hooks),
      ));
      latents = denoised.result.latents;
      // 6. Decode.
      const vaeStart = this.now();
      const decoded = await session.peakDuring(() => this.decode(/** @type {Tensor} */ (latents), run.vaeTiles));
      const { tiles, ...final } = decoded.result;
      const vaeMs = this.now() - vaeStart;
      const latentValues = run.options.returnLatents ? await this.session.download(latents) : undefined;
      return {
        ...final,
        scheduler: run.schedulerName,
        vaeTiles: tiles,
        vaeEncodeTiles: run.vaeEncodeTiles,
        offload: this.model.weights.offload,
        memoryNeedBytes: run.memoryNeed,
        timings: { textEncoderMs, unetStepMs: denoised.result.unetStepMs, vaeMs, totalMs: this.now() - start },
        settings: {
          prompt: run.options.prompt, negativePrompt: run.options.negativePrompt ?? "", seed: String(run.options.seed ?? 0),
          steps: run.steps, guidance: run.guidance, strength: this.strengthOf(run),
        },
        peakBytes: { textEncoder: encoded.peakBytes, denoise: denoised.peakBytes, decode: decoded.peakBytes },
        ...(latentValues ? { latents: latentValues } : {}),
      };
    } finally {
      for (const c of conditioning) c.dispose();
      latents?.dispose();
      this.endRun(run);
    }
  }
}
