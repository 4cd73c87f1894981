// DPM-Solver++(2M): diffusers' DPMSolverMultistepScheduler with
// algorithm_type "dpmsolver++" and solver_order 2, a deterministic multistep
// ODE solver that keeps the previous step's x0 prediction.
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - Default timestep_spacing is "linspace" (PNDM's is "leading"), and the
//   spacing formulas take num_inference_steps + 1 points and drop the last.
// - Sigmas are sqrt((1 - alphas_cumprod) / alphas_cumprod) at the integer
//   timesteps (clamped into the table, as np.interp does), plus a final
//   sigma: 0 ("zero") or that of timestep 0 ("sigma_min").
// - Karras sigmas are continuous; their timesteps come from interpolating log
//   sigma in diffusers' float32 table (we evaluate that table in float32 to pick
//   the same integers), then rounding half to even; with squaredcos_cap_v2
//   diffusers skips the rounding and the int64 cast truncates instead.
// - The last step is first order when final_sigmas_type is "zero", when
//   euler_at_final is set, or when lower_order_final is set and there are
//   fewer than 15 steps; with lower_order_final and fewer than 15 steps the
//   second-to-last step is second order anyway (order 2 is the maximum here).
// - The first step is always first order (no previous x0 yet).
// - diffusers finds its first step index by looking t up in the timesteps (the
//   second match if t repeats); here step() must follow the timesteps in order.
//   The two agree unless the first timestep repeats (Karras sigmas on
//   squaredcos_cap_v2: 998, 998, ...), where diffusers runs past its sigmas.
// - Image-to-image: the strength cut keeps the last timesteps and, as the
//   pipeline's set_begin_index makes diffusers do, the steps keep their
//   places in the whole schedule: their sigmas, the first-order last step
//   (by the whole schedule's length), and a first step of first order (no
//   history yet). add_noise is alpha_t x0 + sigma_t noise at the next step's
//   sigma, in float32.
// Coefficients are float64 (diffusers evaluates them in float32 torch).

import {
  SchedulerBase, alphasCumprod, arange, beginIndex, combine, karrasSigmas, linspace, requireNoiseTimestep,
  requireOneOf, requireStepCount, requireTimestep, resolveConfig, roundHalfEven, sigmaToT, trainingSigmas,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

const NAME = "DPMSolverMultistepScheduler";

/** DPMSolverMultistepScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  solver_order: 2,
  prediction_type: "epsilon",
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: "dpmsolver++",
  solver_type: "midpoint",
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  flow_shift: 1.0,
  final_sigmas_type: "zero",
  lambda_min_clipped: -Infinity,
  variance_type: null,
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  use_dynamic_shifting: false,
  time_shift_type: "exponential",
});

/**
 * The noise level sigma as (alpha_t, sigma_t) of x_t = alpha_t x0 + sigma_t eps,
 * and lambda_t = log(alpha_t / sigma_t).
 * @param {number} sigma
 */
function alphaSigmaLambda(sigma) {
  const alpha = 1 / Math.sqrt(sigma * sigma + 1);
  const sigmaT = sigma * alpha;
  return { alpha, sigma: sigmaT, lambda: Math.log(alpha) - Math.log(sigmaT) };
}

/**
 * DPM-Solver++(2M) over tensors of type T, updated through `ops.combine`.
 * Drive it with `setTimesteps(n)` (or `setTimesteps(n, {strength})` and
 * `addNoise` for image-to-image), then `step(modelOutput, timesteps[i], sample)`
 * for each i in order.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class DPMSolverMultistep extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** @type {Float64Array} */
  #alphasCumprod;
  /** sigma per step of the whole schedule, plus the final sigma. @type {number[]} */
  #sigmas = [];
  /** Where `timesteps` starts in the whole schedule (diffusers' begin_index). */
  #begin = 0;
  /** Steps taken since `setTimesteps`. */
  #stepIndex = 0;
  /** x0 predictions of the previous and the current step, owned here. @type {Array<T | null>} */
  #x0 = [null, null];

  /**
   * Build it as `DPMSolverMultistepScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    const resolved = resolveConfig(DEFAULTS, config, overrides);
    // diffusers maps these legacy values onto the ones it implements.
    const aliases = /** @type {Record<string, unknown>} */ ({});
    if (resolved.algorithm_type === "deis") aliases.algorithm_type = "dpmsolver++";
    if (["logrho", "bh1", "bh2"].includes(/** @type {string} */ (resolved.solver_type))) {
      aliases.solver_type = "midpoint";
    }
    super(Object.freeze({ ...resolved, ...aliases }));
    this.#ops = ops;
    checkSupported(this.config);
    this.#alphasCumprod = alphasCumprod(this.config, NAME);
  }

  /**
   * Plan `steps` inference steps, or with a strength only the last of them;
   * drops (and releases) any state of a previous run.
   * @param {number} steps
   * @param {TimestepOptions} [options]
   */
  setTimesteps(steps, { strength = 1 } = {}) {
    requireStepCount(NAME, steps);
    const c = this.config;
    const trainSteps = /** @type {number} */ (c.num_train_timesteps);
    const ac = this.#alphasCumprod;
    // np.interp over the training sigmas: outside [0, T - 1] it clamps (see spacedTimesteps).
    const sigmaAt = (/** @type {number} */ t) => {
      const a = ac[Math.min(Math.max(t, 0), trainSteps - 1)];
      return Math.sqrt((1 - a) / a);
    };
    let timesteps;
    let sigmas;
    if (c.use_karras_sigmas) {
      ({ timesteps, sigmas } = karrasSchedule(ac, steps, c.beta_schedule === "squaredcos_cap_v2"));
    } else {
      timesteps = spacedTimesteps(c, steps);
      sigmas = timesteps.map(sigmaAt);
    }
    sigmas.push(c.final_sigmas_type === "sigma_min" ? sigmaAt(0) : 0);
    const begin = beginIndex(NAME, steps, strength, timesteps.length);
    this.#reset();
    this.timesteps = timesteps.slice(begin);
    this.#sigmas = sigmas;
    this.#begin = begin;
  }

  /**
   * One solver step from timestep t to the next one.
   * @param {T} modelOutput  The model's prediction at (sample, t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t; the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    requireTimestep(NAME, this.timesteps, this.#stepIndex, t);
    // The index in the whole schedule, and its length.
    const i = this.#begin + this.#stepIndex;
    const n = this.#sigmas.length - 1;
    const c = this.config;
    const s0 = alphaSigmaLambda(this.#sigmas[i]);
    const target = alphaSigmaLambda(this.#sigmas[i + 1]);

    const x0 = this.#predictX0(modelOutput, sample, s0);
    if (this.#x0[0] !== null) this.#ops.release(this.#x0[0]);
    this.#x0 = [this.#x0[1], x0];
    const previousX0 = this.#x0[0];

    const firstOrderFinal = i === n - 1 && (
      /** @type {boolean} */ (c.euler_at_final)
      || (/** @type {boolean} */ (c.lower_order_final) && n < 15)
      || c.final_sigmas_type === "zero");
    // With a final sigma of 0, lambda is +inf there and h too; expm1(-inf) = -1
    // makes this exactly x0, as in diffusers.
    const h = target.lambda - s0.lambda;
    const em1 = target.alpha * Math.expm1(-h); // alpha_t (e^-h - 1)
    const sampleCoef = target.sigma / s0.sigma;
    let prevSample;
    if (previousX0 === null || firstOrderFinal) {
      prevSample = combine(this.#ops, [[sampleCoef, sample], [-em1, x0]]);
    } else {
      // D1 = (x0 - previousX0) / r0, r0 = h_0 / h; midpoint weighs it by -em1 / 2, heun by
      // alpha_t ((e^-h - 1) / h + 1).
      const s1 = alphaSigmaLambda(this.#sigmas[i - 1]);
      const r0 = (s0.lambda - s1.lambda) / h;
      // Heun's weight tends to 0 with h. h is 0 when the final sigma repeats the
      // last one ("sigma_min" after Karras sigmas, which end on it, or after
      // trailing's timestep -1): diffusers computes 0/0 = NaN there, we the limit.
      const d1Coef = c.solver_type === "heun"
        ? (h === 0 ? 0 : target.alpha * (Math.expm1(-h) / h + 1))
        : -0.5 * em1;
      prevSample = combine(this.#ops, [
        [sampleCoef, sample], [-em1 + d1Coef / r0, x0], [-d1Coef / r0, previousX0],
      ]);
    }
    this.#stepIndex++;
    return prevSample;
  }

  /**
   * diffusers' add_noise (begin index set): `original` noised to the sigma of
   * the next step, alpha_t original + sigma_t noise, alpha_t = 1 / sqrt(sigma^2 + 1)
   * and sigma_t = sigma alpha_t in float32 (image-to-image: t = timesteps[0]).
   * @param {T} original  The caller keeps it.
   * @param {T} noise  Standard normal; the caller keeps it.
   * @param {number} t  The next step's timestep.
   * @returns {T}  A new tensor, owned by the caller.
   */
  addNoise(original, noise, t) {
    requireNoiseTimestep(NAME, this.timesteps, this.#stepIndex, t);
    const sigma = Math.fround(this.#sigmas[this.#begin + this.#stepIndex]);
    const alpha = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(sigma * sigma) + 1))));
    return combine(this.#ops, [[alpha, original], [Math.fround(sigma * alpha), noise]]);
  }

  /** Release every tensor held; `setTimesteps` is needed before stepping again. */
  dispose() {
    this.#reset();
    this.timesteps = [];
    this.#sigmas = [];
  }

  /**
   * The data prediction x0 from the model output (dpmsolver++ works on x0).
   * @param {T} modelOutput
   * @param {T} sample
   * @param {{alpha: number, sigma: number}} s
   * @returns {T}  A new tensor, owned by the scheduler.
   */
  #predictX0(modelOutput, sample, s) {
    switch (this.config.prediction_type) {
      case "epsilon":
        return combine(this.#ops, [[1 / s.alpha, sample], [-s.sigma / s.alpha, modelOutput]]);
      case "v_prediction":
        return combine(this.#ops, [[s.alpha, sample], [-s.sigma, modelOutput]]);
      default: // "sample"
        return combine(this.#ops, [[1, modelOutput]]);
    }
  }

  #reset() {
    for (const x of this.#x0) if (x !== null) this.#ops.release(x);
    this.#x0 = [null, null];
    this.#stepIndex = 0;
  }
}

/**
 * Refuse what this implementation does not do, naming the key.
 * @param {Readonly<Record<string, unknown>>} c
 */
function checkSupported(c) {
  requireOneOf(NAME, c, "algorithm_type", ["dpmsolver++"]);
  requireOneOf(NAME, c, "solver_order", [2]);
  requireOneOf(NAME, c, "solver_type", ["midpoint", "heun"]);
  requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction", "sample"]);
  requireOneOf(NAME, c, "timestep_spacing", ["linspace", "leading", "trailing"]);
  requireOneOf(NAME, c, "final_sigmas_type", ["zero", "sigma_min"]);
  requireOneOf(NAME, c, "thresholding", [false]);
  requireOneOf(NAME, c, "variance_type", [null]);
  requireOneOf(NAME, c, "lambda_min_clipped", [-Infinity]);
  for (const key of [
    "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas",
    "rescale_betas_zero_snr", "use_dynamic_shifting",
  ]) {
    requireOneOf(NAME, c, key, [false]);
  }
  requireOneOf(NAME, c, "use_karras_sigmas", [false, true]);
  requireOneOf(NAME, c, "lower_order_final", [false, true]);
  requireOneOf(NAME, c, "euler_at_final", [false, true]);
}

/**
 * Integer timesteps, descending, by the configured spacing (diffusers'
 * set_timesteps: numpy float math, round half to even, int64).
 * @param {Readonly<Record<string, unknown>>} c
 * @param {number} steps
 * @returns {number[]}
 */
function spacedTimesteps(c, steps) {
  const trainSteps = /** @type {number} */ (c.num_train_timesteps);
  switch (c.timestep_spacing) {
    case "linspace":
      return linspace(0, trainSteps - 1, steps + 1).map(roundHalfEven).reverse().slice(0, -1);
    case "leading": {
      const ratio = Math.floor(trainSteps / (steps + 1));
      const offset = /** @type {number} */ (c.steps_offset);
      return Array.from({ length: steps + 1 }, (_, i) => i * ratio).reverse().slice(0, -1).map((t) => t + offset);
    }
    default: // "trailing"
      // numpy's float arange sometimes yields one point too many (61, 103, 121,
      // 122 steps of 1000): diffusers then has steps + 1 timesteps, the last
      // one -1, whose sigma np.interp clamps to timestep 0's. We do the same.
      return arange(trainSteps, 0, -trainSteps / steps).map((t) => roundHalfEven(t) - 1);
  }
}

/**
 * Karras et al. (2022) sigmas, rho = 7, from the largest to the smallest
 * training sigma, and the timesteps diffusers assigns them.
 * @param {Float64Array} ac  alphas_cumprod
 * @param {number} steps
 * @param {boolean} truncate  squaredcos_cap_v2: diffusers does not round, the int64 cast truncates.
 */
function karrasSchedule(ac, steps, truncate) {
  // diffusers' sigma table and its logs are float32 (torch, then numpy);
  // the timesteps depend on comparisons against them, so evaluate them in float32.
  const sigma32 = trainingSigmas(ac);
  const logSigma32 = sigma32.map((s) => Math.fround(Math.log(s)));
  const sigmas = karrasSigmas(sigma32[0], sigma32[sigma32.length - 1], steps);
  const timesteps = sigmas.map((sigma) => {
    const t = sigmaToT(sigma, logSigma32);
    return truncate ? Math.trunc(t) : roundHalfEven(t);
  });
  return { timesteps, sigmas };
}
