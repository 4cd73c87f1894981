// DDIM: diffusers' DDIMScheduler with eta 0, the deterministic implicit
// sampler: predict x0, then move it to the next timestep along the
// predicted noise.
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - Default timestep_spacing is "leading" (+ steps_offset); "linspace" rounds
//   n points of [0, T - 1] half to even; "trailing" is round(arange(T, 0, -T/n)) - 1.
// - Every step targets t - T // n, whatever the spacing; a target below 0
//   uses final_alpha_cumprod: 1 with set_alpha_to_one (the default), else
//   alphas_cumprod[0].
// - clip_sample (default true!) clamps the x0 prediction to
//   [-clip_sample_range, clip_sample_range]; the noise direction still uses
//   the unclipped prediction (use_clipped_model_output false).
// - eta is an argument of diffusers' step(), not a config key; only 0 is
//   supported here (eta > 0 draws noise).
// - Where numpy's float arange gives "trailing" a timestep -1 (61, 103, 121,
//   122 steps of 1000), diffusers indexes alphas_cumprod[-1]; we refuse.
// - Image-to-image: setTimesteps' strength keeps the last timesteps (the
//   pipeline's get_timesteps; DDIM has no begin index, its steps depend on t
//   alone); add_noise is sqrt(a_t) x0 + sqrt(1 - a_t) noise in float32.

import {
  SchedulerBase, SchedulerError, alphasCumprod, beginIndex, combine, noiseByAlphas, predictions,
  requireClampIfClipping, requireOneOf, requireStepCount, requireTimestep, requireTrainingRange, resolveConfig,
  spacedTimesteps,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

const NAME = "DDIMScheduler";

/** DDIMScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: "leading",
  rescale_betas_zero_snr: false,
});

/**
 * DDIM (eta 0) over tensors of type T, updated through `ops.combine` (and
 * `ops.clamp` with clip_sample). Drive it with `setTimesteps(n)` (or
 * `setTimesteps(n, {strength})` and `addNoise` for image-to-image), then
 * `step(modelOutput, timesteps[i], sample)` for each i in order.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class DDIM extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** @type {Float64Array} */
  #alphasCumprod;
  /** @type {number} */
  #finalAlphaCumprod;
  /** num_train_timesteps // steps. */
  #stride = 0;
  #stepIndex = 0;

  /**
   * Build it as `DDIMScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides));
    this.#ops = ops;
    const c = this.config;
    requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction", "sample"]);
    requireOneOf(NAME, c, "timestep_spacing", ["leading", "trailing", "linspace"]);
    requireOneOf(NAME, c, "thresholding", [false]);
    requireOneOf(NAME, c, "rescale_betas_zero_snr", [false]);
    requireOneOf(NAME, c, "clip_sample", [false, true]);
    requireOneOf(NAME, c, "set_alpha_to_one", [false, true]);
    requireClampIfClipping(NAME, c, ops);
    this.#alphasCumprod = alphasCumprod(c, NAME);
    this.#finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.#alphasCumprod[0];
  }

  /**
   * Plan `steps` inference steps, or with a strength only the last of them.
   * @param {number} steps
   * @param {TimestepOptions} [options]
   */
  setTimesteps(steps, { strength = 1 } = {}) {
    requireStepCount(NAME, steps);
    const c = this.config;
    const trainSteps = /** @type {number} */ (c.num_train_timesteps);
    if (steps > trainSteps) {
      throw new SchedulerError(
        `${NAME}: ${steps} inference steps cannot be more than num_train_timesteps (${trainSteps}); use fewer steps`,
      );
    }
    const timesteps = spacedTimesteps(c, steps, true);
    requireTrainingRange(NAME, c, steps, timesteps);
    this.timesteps = timesteps.slice(beginIndex(NAME, steps, strength, timesteps.length));
    this.#stride = Math.floor(trainSteps / steps);
    this.#stepIndex = 0;
  }

  /**
   * diffusers' add_noise: `original` noised to timestep t (image-to-image: t = timesteps[0]).
   * @param {T} original  The caller keeps it.
   * @param {T} noise  Standard normal; the caller keeps it.
   * @param {number} t  A training timestep.
   * @returns {T}  sqrt(a_t) original + sqrt(1 - a_t) noise, owned by the caller.
   */
  addNoise(original, noise, t) {
    return noiseByAlphas(NAME, this.#ops, this.#alphasCumprod, original, noise, t);
  }

  /**
   * One DDIM step from timestep t to t - num_train_timesteps // steps.
   * @param {T} modelOutput  The model's prediction at (sample, t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t; the caller keeps it.
   * @param {number} [eta]  diffusers' step argument: only 0 (deterministic DDIM) is supported.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample, eta = 0) {
    if (eta !== 0) {
      throw new SchedulerError(`${NAME}: eta=${eta} is not supported (only deterministic DDIM, eta 0)`);
    }
    const i = this.#stepIndex;
    requireTimestep(NAME, this.timesteps, i, t);
    const c = this.config;
    const to = t - this.#stride;
    const aPrev = to >= 0 ? this.#alphasCumprod[to] : this.#finalAlphaCumprod;
    const { x0, eps } = predictions(c.prediction_type, this.#alphasCumprod[t]);
    // x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps
    const x0Coef = Math.sqrt(aPrev);
    const epsCoef = Math.sqrt(1 - aPrev);
    const ops = this.#ops;
    let prevSample;
    if (c.clip_sample) {
      const raw = combine(ops, [[x0[0], sample], [x0[1], modelOutput]]);
      const clipped = /** @type {NonNullable<TensorOps<T>["clamp"]>} */ (ops.clamp)(raw, /** @type {number} */ (c.clip_sample_range));
      ops.release(raw);
      prevSample = combine(ops, [[x0Coef, clipped], [epsCoef * eps[0], sample], [epsCoef * eps[1], modelOutput]]);
      ops.release(clipped);
    } else {
      prevSample = combine(ops, [
        [x0Coef * x0[0] + epsCoef * eps[0], sample],
        [x0Coef * x0[1] + epsCoef * eps[1], modelOutput],
      ]);
    }
    this.#stepIndex = i + 1;
    return prevSample;
  }

  /** Forget the plan; `setTimesteps` is needed before stepping again (DDIM holds no tensors). */
  dispose() {
    this.timesteps = [];
    this.#stepIndex = 0;
  }
}
