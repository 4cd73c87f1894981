// Euler: diffusers' EulerDiscreteScheduler, Karras et al.'s first-order ODE
// solver in sigma space, x_{i+1} = x_i + (sigma_{i+1} - sigma_i) d_i with
// d_i = (x_i - x0_i) / sigma_i. The model sees x / sqrt(sigma^2 + 1).
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - Timesteps are float32, not integers: "linspace" (the default) takes n
//   points of [0, T - 1] without rounding (999, 665.99994, ...; a single step
//   is timestep 0!). Their sigmas interpolate the float32 training sigmas
//   linearly (np.interp, float64), then are stored in float32.
// - Karras sigmas run from the sigmas of the FIRST and LAST spaced
//   timestep (not the training extremes as in DPM-Solver), unless the config
//   sets sigma_min / sigma_max; their timesteps are the fractional
//   log-sigma interpolation, not rounded.
// - init_noise_sigma is the largest sigma with "linspace" and "trailing",
//   but sqrt(max^2 + 1) with "leading".
// - final_sigmas_type "sigma_min" ends on the sigma of timestep 0, not 0.
// - Stepping follows the timesteps in order; diffusers looks the first one up
//   and takes the second match when it repeats (Karras on squaredcos_cap_v2),
//   where the two differ.
// - s_churn (stochastic "churn") is a step() argument in diffusers, default 0:
//   not offered here, so Euler draws no noise.
// - Image-to-image: the strength cut keeps the last timesteps, whose steps
//   keep their sigmas (diffusers' begin_index, which the pipeline sets);
//   add_noise is original + sigma noise at the next step's float32 sigma,
//   whatever timestep diffusers is given (we insist on that step's).
// Euler ancestral (euler_ancestral.js) shares all of this but its step: both
// are an EulerBase, which keeps the schedule.

import {
  SchedulerBase, alphasCumprod, beginIndex, combine, interpolate, karrasSigmas, requireNoiseTimestep, requireOneOf,
  requireStepCount, requireTimestep, resolveConfig, sigmaToT, spacedTimesteps, trainingSigmas,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

const NAME = "EulerDiscreteScheduler";

/** EulerDiscreteScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  prediction_type: "epsilon",
  interpolation_type: "linear",
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  sigma_min: null,
  sigma_max: null,
  timestep_spacing: "linspace",
  timestep_type: "discrete",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  final_sigmas_type: "zero",
});

/**
 * The step's update as (sample coef, modelOutput coef): x + dt (x - x0) / sigma
 * with x0 from the prediction type (dt = sigma_next - sigma).
 * @param {unknown} predictionType  "epsilon", "v_prediction" or "sample"
 * @param {number} sigma
 * @param {number} dt
 * @returns {[number, number]}
 */
export function eulerCoefficients(predictionType, sigma, dt) {
  const s2 = sigma * sigma + 1;
  switch (predictionType) {
    case "epsilon": // x0 = x - sigma eps
      return [1, dt];
    case "v_prediction": // x0 = x / (sigma^2 + 1) - sigma v / sqrt(sigma^2 + 1)
      return [1 + (dt * sigma) / s2, dt / Math.sqrt(s2)];
    default: // "sample": x0 = model output
      return [1 + dt / sigma, -dt / sigma];
  }
}

/**
 * How an Euler scheduler moves a sample from one sigma to the next.
 * @template T
 * @callback EulerUpdate
 * @param {TensorOps<T>} ops
 * @param {{predictionType: unknown, sigma: number, next: number}} step
 * @param {T} modelOutput  The caller keeps it.
 * @param {T} sample  The caller keeps it.
 * @returns {T}  The new sample, owned by the caller.
 */

/**
 * What the Euler schedulers share: float32 timesteps and sigmas spaced (or
 * Karras sigmas where the config asks) over the float32 training sigmas, the
 * scaled model input, init_noise_sigma, addNoise and the strength cut; they
 * differ in their config and their step's update.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class EulerBase extends SchedulerBase {
  /** @type {string} */
  #name;
  /** @type {TensorOps<T>} */
  #ops;
  /** @type {EulerUpdate<T>} */
  #update;
  /** float32 training sigmas, ascending in timestep. @type {number[]} */
  #sigma32;
  /** float32 sigma per step of the whole schedule, plus the final sigma. @type {number[]} */
  #sigmas;
  /** Where `timesteps` starts in the whole schedule (diffusers' begin_index). */
  #begin = 0;
  /** Steps taken since `setTimesteps`. */
  #stepIndex = 0;

  /**
   * @param {Readonly<Record<string, unknown>>} config  The resolved config.
   * @param {TensorOps<T>} ops
   * @param {{name: string, check: (c: Readonly<Record<string, unknown>>) => void, update: EulerUpdate<T>}} kind
   *   The class's name, its refusal of unsupported settings, and its update.
   */
  constructor(config, ops, { name, check, update }) {
    super(config);
    check(config);
    this.#name = name;
    this.#ops = ops;
    this.#update = update;
    this.#sigma32 = trainingSigmas(alphasCumprod(config, name));
    // Before setTimesteps diffusers holds every training sigma, descending, and 0.
    this.#sigmas = [...this.#sigma32].reverse().concat(0);
  }

  /** Standard deviation of the initial noise (diffusers' init_noise_sigma after setTimesteps). */
  get initNoiseSigma() {
    // The largest float32 sigma, or sqrt(max^2 + 1) (in float32) with "leading" spacing.
    const max = Math.max(...this.#sigmas);
    const spacing = this.config.timestep_spacing;
    if (spacing === "linspace" || spacing === "trailing") return max;
    return Math.fround(Math.sqrt(Math.fround(Math.fround(max * max) + 1)));
  }

  /**
   * Plan `steps` inference steps, or with a strength only the last of them.
   * @param {number} steps
   * @param {TimestepOptions} [options]
   */
  setTimesteps(steps, { strength = 1 } = {}) {
    requireStepCount(this.#name, steps);
    const c = this.config;
    // The spaced timesteps (float32) and their sigmas (np.interp, float64).
    let timesteps = spacedTimesteps(c, steps, false);
    let sigmas = timesteps.map((t) => interpolate(t, this.#sigma32));
    if (c.use_karras_sigmas) {
      const sigmaMin = typeof c.sigma_min === "number" ? c.sigma_min : sigmas[sigmas.length - 1];
      const sigmaMax = typeof c.sigma_max === "number" ? c.sigma_max : sigmas[0];
      sigmas = karrasSigmas(sigmaMin, sigmaMax, steps);
      const logSigma32 = this.#sigma32.map((s) => Math.fround(Math.log(s)));
      timesteps = sigmas.map((s) => Math.fround(sigmaToT(s, logSigma32)));
    }
    sigmas.push(c.final_sigmas_type === "sigma_min" ? this.#sigma32[0] : 0);
    const begin = beginIndex(this.#name, steps, strength, timesteps.length);
    this.timesteps = timesteps.slice(begin);
    this.#sigmas = sigmas.map(Math.fround);
    this.#begin = begin;
    this.#stepIndex = 0;
  }

  /**
   * The model input for the current step: sample / sqrt(sigma^2 + 1).
   * @param {T} sample  The caller keeps it.
   * @param {number} t  The timestep of the next `step`.
   * @returns {T}  A new tensor, owned by the caller.
   */
  scaleModelInput(sample, t) {
    requireTimestep(this.#name, this.timesteps, this.#stepIndex, t);
    const sigma = this.#sigmas[this.#begin + this.#stepIndex];
    return this.#ops.combine([[1 / Math.sqrt(sigma * sigma + 1), sample]]);
  }

  /**
   * diffusers' add_noise (begin index set): `original` + sigma noise, at the
   * float32 sigma of the next step (image-to-image: t = timesteps[0]).
   * @param {T} original  The caller keeps it.
   * @param {T} noise  Standard normal; the caller keeps it.
   * @param {number} t  The next step's timestep.
   * @returns {T}  A new tensor, owned by the caller.
   */
  addNoise(original, noise, t) {
    requireNoiseTimestep(this.#name, this.timesteps, this.#stepIndex, t);
    return combine(this.#ops, [[1, original], [this.#sigmas[this.#begin + this.#stepIndex], noise]]);
  }

  /**
   * One step from timestep t to the next one.
   * @param {T} modelOutput  The model's prediction at (scaleModelInput(sample, t), t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t (unscaled); the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    requireTimestep(this.#name, this.timesteps, this.#stepIndex, t);
    const i = this.#begin + this.#stepIndex;
    const step = { predictionType: this.config.prediction_type, sigma: this.#sigmas[i], next: this.#sigmas[i + 1] };
    const prevSample = this.#update(this.#ops, step, modelOutput, sample);
    this.#stepIndex++;
    return prevSample;
  }

  /** Forget the plan; `setTimesteps` is needed before stepping again (it holds no tensors). */
  dispose() {
    this.timesteps = [];
    this.#stepIndex = 0;
  }
}

/**
 * Euler's update: x + dt (x - x0) / sigma, dt a float32 difference as in diffusers.
 * @template T
 * @param {TensorOps<T>} ops
 * @param {{predictionType: unknown, sigma: number, next: number}} step
 * @param {T} modelOutput
 * @param {T} sample
 * @returns {T}
 */
function eulerUpdate(ops, { predictionType, sigma, next }, modelOutput, sample) {
  const [sampleCoef, outputCoef] = eulerCoefficients(predictionType, sigma, Math.fround(next - sigma));
  return combine(ops, [[sampleCoef, sample], [outputCoef, modelOutput]]);
}

/**
 * Refuse what Euler does not implement, naming the key.
 * @param {Readonly<Record<string, unknown>>} c
 */
function checkSupported(c) {
  requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction", "sample"]);
  requireOneOf(NAME, c, "timestep_spacing", ["linspace", "leading", "trailing"]);
  requireOneOf(NAME, c, "final_sigmas_type", ["zero", "sigma_min"]);
  requireOneOf(NAME, c, "interpolation_type", ["linear"]);
  requireOneOf(NAME, c, "timestep_type", ["discrete"]);
  requireOneOf(NAME, c, "use_karras_sigmas", [false, true]);
  for (const key of ["use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr"]) {
    requireOneOf(NAME, c, key, [false]);
  }
}

/**
 * Euler over tensors of type T, updated through `ops.combine`. Drive it with
 * `setTimesteps(n)` (or `setTimesteps(n, {strength})` and `addNoise` for
 * image-to-image), then for each i in order
 * `step(model(scaleModelInput(x, timesteps[i])), timesteps[i], x)`.
 * @template T
 * @extends {EulerBase<T>}
 */
export class EulerDiscrete extends EulerBase {
  /**
   * Build it as `EulerDiscreteScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides), ops, {
      name: NAME, check: checkSupported, update: eulerUpdate,
    });
  }
}
