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

import {
  SchedulerBase, alphasCumprod, combine, interpolate, karrasSigmas, requireOneOf, requireStepCount,
  requireTimestep, resolveConfig, sigmaToT, spacedTimesteps, trainingSigmas,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */

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
 * The spaced timesteps (float32) and their sigmas (float64, np.interp over
 * the float32 training sigmas), as the Euler schedulers compute them.
 * @param {Readonly<Record<string, unknown>>} c
 * @param {readonly number[]} sigma32  trainingSigmas(alphas_cumprod)
 * @param {number} steps
 */
export function spacedSigmas(c, sigma32, steps) {
  const timesteps = spacedTimesteps(c, steps, false);
  return { timesteps, sigmas: timesteps.map((t) => interpolate(t, sigma32)) };
}

/**
 * diffusers' init_noise_sigma from the float32 sigmas: the largest, or
 * sqrt(max^2 + 1) (in float32) with "leading" spacing.
 * @param {readonly number[]} sigmas
 * @param {unknown} spacing
 * @returns {number}
 */
export function initialNoiseSigma(sigmas, spacing) {
  const max = Math.max(...sigmas);
  if (spacing === "linspace" || spacing === "trailing") return max;
  return Math.fround(Math.sqrt(Math.fround(Math.fround(max * max) + 1)));
}

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
 * Euler over tensors of type T, updated through `ops.combine`. Drive it with
 * `setTimesteps(n)`, then for each i in order
 * `step(model(scaleModelInput(x, timesteps[i])), timesteps[i], x)`.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class EulerDiscrete extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** float32 training sigmas, ascending in timestep. @type {number[]} */
  #sigma32;
  /** float32 sigma per step, plus the final sigma. @type {number[]} */
  #sigmas;
  #stepIndex = 0;

  /**
   * Build it as `EulerDiscreteScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides));
    this.#ops = ops;
    const c = this.config;
    requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction", "sample"]);
    requireOneOf(NAME, c, "timestep_spacing", ["linspace", "leading", "trailing"]);
    requireOneOf(NAME, c, "final_sigmas_type", ["zero", "sigma_min"]);
    requireOneOf(NAME, c, "interpolation_type", ["linear"]);
    requireOneOf(NAME, c, "timestep_type", ["discrete"]);
    requireOneOf(NAME, c, "use_karras_sigmas", [false, true]);
    for (const key of ["use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr"]) {
      requireOneOf(NAME, c, key, [false]);
    }
    this.#sigma32 = trainingSigmas(alphasCumprod(c, NAME));
    // Before setTimesteps diffusers holds every training sigma, descending, and 0.
    this.#sigmas = [...this.#sigma32].reverse().concat(0);
  }

  /** Standard deviation of the initial noise (diffusers' init_noise_sigma after setTimesteps). */
  get initNoiseSigma() {
    return initialNoiseSigma(this.#sigmas, this.config.timestep_spacing);
  }

  /**
   * Plan `steps` inference steps.
   * @param {number} steps
   */
  setTimesteps(steps) {
    requireStepCount(NAME, steps);
    const c = this.config;
    let { timesteps, sigmas } = spacedSigmas(c, this.#sigma32, steps);
    if (c.use_karras_sigmas) {
      const sigmaMin = typeof c.sigma_min === "number" ? c.sigma_min : sigmas[sigmas.length - 1];
      const sigmaMax = typeof c.sigma_max === "number" ? c.sigma_max : sigmas[0];
      sigmas = karrasSigmas(sigmaMin, sigmaMax, steps);
      const logSigma32 = this.#sigma32.map((s) => Math.fround(Math.log(s)));
      timesteps = sigmas.map((s) => Math.fround(sigmaToT(s, logSigma32)));
    }
    sigmas.push(c.final_sigmas_type === "sigma_min" ? this.#sigma32[0] : 0);
    this.timesteps = timesteps;
    this.#sigmas = sigmas.map(Math.fround);
    this.#stepIndex = 0;
  }

  /**
   * The model input for the current step: sample / sqrt(sigma^2 + 1).
   * @param {T} sample  The caller keeps it.
   * @param {number} t  The timestep of the next `step`.
   * @returns {T}  A new tensor, owned by the caller.
   */
  scaleModelInput(sample, t) {
    requireTimestep(NAME, this.timesteps, this.#stepIndex, t);
    const sigma = this.#sigmas[this.#stepIndex];
    return this.#ops.combine([[1 / Math.sqrt(sigma * sigma + 1), sample]]);
  }

  /**
   * One Euler step from timestep t to the next one.
   * @param {T} modelOutput  The model's prediction at (scaleModelInput(sample, t), t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t (unscaled); the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    const i = this.#stepIndex;
    requireTimestep(NAME, this.timesteps, i, t);
    const sigma = this.#sigmas[i];
    // dt is a float32 difference in diffusers.
    const dt = Math.fround(this.#sigmas[i + 1] - sigma);
    const [sampleCoef, outputCoef] = eulerCoefficients(this.config.prediction_type, sigma, dt);
    const prevSample = combine(this.#ops, [[sampleCoef, sample], [outputCoef, modelOutput]]);
    this.#stepIndex = i + 1;
    return prevSample;
  }

  /** Forget the plan; `setTimesteps` is needed before stepping again (Euler holds no tensors). */
  dispose() {
    this.timesteps = [];
    this.#stepIndex = 0;
  }
}
