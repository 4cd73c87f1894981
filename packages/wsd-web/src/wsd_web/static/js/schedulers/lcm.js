// LCM: diffusers' LCMScheduler, for latent consistency models (few steps).
// Each step maps x_t straight to a denoised estimate through the consistency
// model's boundary-condition scalings, then (except at the last step) noises
// it afresh to the next timestep.
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - The timesteps are a subset of the distillation schedule of
//   original_inference_steps (default 50) points, k * j - 1 for j = 1..orig
//   with k = T // orig, picked descending at indices
//   floor(linspace(0, orig, n, endpoint=False)). timestep_spacing and
//   steps_offset are ignored; n may not exceed original_inference_steps.
// - denoised = c_out x0 + c_skip x_t with, for s = t * timestep_scaling,
//   c_skip = 0.25 / (s^2 + 0.25), c_out = s / sqrt(s^2 + 0.25) (sigma_data 0.5).
// - Between steps: x_next = sqrt(a_next) denoised + sqrt(1 - a_next) noise,
//   the noise drawn from the generator passed to step() (`ops.noise()`),
//   at every step but the last, which returns denoised itself.
// - Defaults differ from DDIM's: scaled_linear 0.00085..0.012 betas,
//   clip_sample false, set_alpha_to_one true (unused: targets are never < 0).
// - Image-to-image as StableDiffusionImg2ImgPipeline does it (set_timesteps(n),
//   then the strength cut and set_begin_index): the kept steps run as they
//   would have, the last one without noise; add_noise is DDIM's. (diffusers'
//   LCM img2img pipeline instead passes strength to LCM's own set_timesteps,
//   which picks other timesteps; that is not what this does.)

import {
  SchedulerBase, SchedulerError, alphasCumprod, beginIndex, combine, noiseByAlphas, predictions,
  requireClampIfClipping, requireOneOf, requireStepCount, requireTimestep, resolveConfig,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

const NAME = "LCMScheduler";

/** LCMScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  trained_betas: null,
  original_inference_steps: 50,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  timestep_spacing: "leading",
  timestep_scaling: 10.0,
  rescale_betas_zero_snr: false,
});

/** The consistency models' sigma_data, as diffusers fixes it. */
const SIGMA_DATA = 0.5;

/**
 * LCM multistep sampling over tensors of type T, updated through
 * `ops.combine` (and `ops.clamp` with clip_sample), with `ops.noise()` drawn
 * between steps. Drive it with `setTimesteps(n)` (or `setTimesteps(n, {strength})`
 * and `addNoise` for image-to-image), then `step(modelOutput, timesteps[i], sample)`
 * for each i in order.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class LCM extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** @type {Float64Array} */
  #alphasCumprod;
  #stepIndex = 0;

  /**
   * Build it as `LCMScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides));
    this.#ops = ops;
    const c = this.config;
    requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction", "sample"]);
    requireOneOf(NAME, c, "thresholding", [false]);
    requireOneOf(NAME, c, "rescale_betas_zero_snr", [false]);
    requireOneOf(NAME, c, "clip_sample", [false, true]);
    requireClampIfClipping(NAME, c, ops);
    this.#alphasCumprod = alphasCumprod(c, NAME);
  }

  /**
   * Plan `steps` inference steps (at most original_inference_steps), or with a
   * strength only the last of them.
   * @param {number} steps
   * @param {TimestepOptions} [options]
   */
  setTimesteps(steps, { strength = 1 } = {}) {
    requireStepCount(NAME, steps);
    const c = this.config;
    const trainSteps = /** @type {number} */ (c.num_train_timesteps);
    const original = Number(c.original_inference_steps);
    if (!Number.isInteger(original) || original < 1 || original > trainSteps) {
      throw new SchedulerError(
        `${NAME}: original_inference_steps=${c.original_inference_steps} must be an integer in ` +
        `1..num_train_timesteps (${trainSteps}); fix the scheduler config`,
      );
    }
    if (steps > original) {
      throw new SchedulerError(
        `${NAME}: ${steps} inference steps cannot be more than original_inference_steps (${original}), ` +
        "the distillation schedule they are picked from; use fewer steps",
      );
    }
    const k = Math.floor(trainSteps / original);
    // The distillation schedule, descending: k * j - 1 for j = orig..1.
    const schedule = Array.from({ length: original }, (_, j) => (original - j) * k - 1);
    // numpy's linspace(0, orig, n, endpoint=False): i * (orig / n), floored.
    const stride = original / steps;
    const timesteps = Array.from({ length: steps }, (_, i) => schedule[Math.floor(i * stride)]);
    this.timesteps = timesteps.slice(beginIndex(NAME, steps, strength, timesteps.length));
    this.#stepIndex = 0;
  }

  /**
   * One LCM step: the denoised estimate at the last step, else that estimate
   * noised to the next timestep with one `ops.noise()`.
   * @param {T} modelOutput  The model's prediction at (sample, t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t; the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    const i = this.#stepIndex;
    requireTimestep(NAME, this.timesteps, i, t);
    const c = this.config;
    const ops = this.#ops;
    const last = i === this.timesteps.length - 1;
    const { x0 } = predictions(c.prediction_type, this.#alphasCumprod[t]);
    const scaled = t * /** @type {number} */ (c.timestep_scaling);
    const cSkip = SIGMA_DATA ** 2 / (scaled * scaled + SIGMA_DATA ** 2);
    const cOut = scaled / Math.sqrt(scaled * scaled + SIGMA_DATA ** 2);
    const aNext = last ? 1 : this.#alphasCumprod[this.timesteps[i + 1]];
    // x_next = sqrt(a_next) (c_out x0 + c_skip x_t) + sqrt(1 - a_next) noise
    const keep = Math.sqrt(aNext);
    /** @type {Array<[number, T]>} */
    const terms = [];
    /** @type {T[]} */
    const temporaries = [];
    if (c.clip_sample) {
      const raw = combine(ops, [[x0[0], sample], [x0[1], modelOutput]]);
      const clipped = /** @type {NonNullable<TensorOps<T>["clamp"]>} */ (ops.clamp)(raw, /** @type {number} */ (c.clip_sample_range));
      ops.release(raw);
      temporaries.push(clipped);
      terms.push([keep * cOut, clipped], [keep * cSkip, sample]);
    } else {
      terms.push([keep * (cOut * x0[0] + cSkip), sample], [keep * cOut * x0[1], modelOutput]);
    }
    if (!last) {
      const noise = ops.noise();
      temporaries.push(noise);
      terms.push([Math.sqrt(1 - aNext), noise]);
    }
    const prevSample = combine(ops, terms);
    for (const x of temporaries) ops.release(x);
    this.#stepIndex = i + 1;
    return prevSample;
  }

  /**
   * `original` noised to timestep t as DDIM's add_noise does it (image-to-image: t = timesteps[0]).
   * @param {T} original  The caller keeps it.
   * @param {T} noise  Standard normal; the caller keeps it.
   * @param {number} t  A training timestep.
   * @returns {T}  sqrt(a_t) original + sqrt(1 - a_t) noise, owned by the caller.
   */
  addNoise(original, noise, t) {
    return noiseByAlphas(NAME, this.#ops, this.#alphasCumprod, original, noise, t);
  }

  /** Forget the plan; `setTimesteps` is needed before stepping again (LCM holds no tensors). */
  dispose() {
    this.timesteps = [];
    this.#stepIndex = 0;
  }
}
