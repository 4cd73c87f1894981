// Euler ancestral: diffusers' EulerAncestralDiscreteScheduler. Each step is
// an Euler step down to sigma_down, then fresh noise of scale sigma_up brings
// the sample back up to the next sigma, with sigma_up^2 + sigma_down^2 = sigma_next^2
// and sigma_up = sigma_next sqrt(1 - sigma_next^2 / sigma^2).
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - Timesteps, sigmas, init_noise_sigma and the input scaling are Euler's
//   (float32 timesteps, "linspace" by default; see euler.js), but without
//   Karras sigmas or final_sigmas_type: the last sigma is always 0.
// - Noise is drawn at EVERY step, the last included (where sigma_up is 0), from
//   the generator passed to step(): `ops.noise()`, called once per step, keeps
//   the stream aligned.
// - prediction_type "sample" is not implemented by diffusers either.

import {
  SchedulerBase, alphasCumprod, combine, requireOneOf, requireStepCount, requireTimestep, resolveConfig,
  trainingSigmas,
} from "./common.js";
import { eulerCoefficients, initialNoiseSigma, spacedSigmas } from "./euler.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */

const NAME = "EulerAncestralDiscreteScheduler";

/** EulerAncestralDiscreteScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  prediction_type: "epsilon",
  timestep_spacing: "linspace",
  steps_offset: 0,
  rescale_betas_zero_snr: false,
});

/**
 * Euler ancestral over tensors of type T, updated through `ops.combine`, with
 * `ops.noise()` drawn once per step. Drive it with `setTimesteps(n)`, then for
 * each i in order `step(model(scaleModelInput(x, timesteps[i])), timesteps[i], x)`.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class EulerAncestralDiscrete extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** float32 training sigmas, ascending in timestep. @type {number[]} */
  #sigma32;
  /** float32 sigma per step, plus the final 0. @type {number[]} */
  #sigmas;
  #stepIndex = 0;

  /**
   * Build it as `EulerAncestralDiscreteScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides));
    this.#ops = ops;
    const c = this.config;
    requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction"]);
    requireOneOf(NAME, c, "timestep_spacing", ["linspace", "leading", "trailing"]);
    requireOneOf(NAME, c, "rescale_betas_zero_snr", [false]);
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
    const { timesteps, sigmas } = spacedSigmas(this.config, this.#sigma32, steps);
    this.timesteps = timesteps;
    this.#sigmas = [...sigmas, 0].map(Math.fround);
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
   * One ancestral step from timestep t to the next one; draws `ops.noise()` once.
   * @param {T} modelOutput  The model's prediction at (scaleModelInput(sample, t), t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t (unscaled); the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    const i = this.#stepIndex;
    requireTimestep(NAME, this.timesteps, i, t);
    const sigma = this.#sigmas[i];
    const next = this.#sigmas[i + 1];
    const sigmaUp = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
    const sigmaDown = Math.sqrt(next * next - sigmaUp * sigmaUp);
    const [sampleCoef, outputCoef] = eulerCoefficients(this.config.prediction_type, sigma, sigmaDown - sigma);
    const noise = this.#ops.noise();
    const prevSample = combine(this.#ops, [[sampleCoef, sample], [outputCoef, modelOutput], [sigmaUp, noise]]);
    this.#ops.release(noise);
    this.#stepIndex = i + 1;
    return prevSample;
  }

  /** Forget the plan; `setTimesteps` is needed before stepping again (it holds no tensors). */
  dispose() {
    this.timesteps = [];
    this.#stepIndex = 0;
  }
}
