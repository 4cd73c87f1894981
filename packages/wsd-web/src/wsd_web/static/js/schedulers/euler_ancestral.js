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
// - Image-to-image as Euler: the cut steps keep their sigmas (begin_index),
//   and add_noise is original + sigma noise at the next step's sigma.
// All but the step is Euler's (EulerBase, euler.js).

import { combine, requireOneOf, resolveConfig } from "./common.js";
import { EulerBase, eulerCoefficients } from "./euler.js";

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
 * The ancestral update: an Euler step down to sigma_down, then `ops.noise()`
 * (drawn once) of scale sigma_up.
 * @template T
 * @param {TensorOps<T>} ops
 * @param {{predictionType: unknown, sigma: number, next: number}} step
 * @param {T} modelOutput
 * @param {T} sample
 * @returns {T}
 */
function ancestralUpdate(ops, { predictionType, sigma, next }, modelOutput, sample) {
  const sigmaUp = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
  const sigmaDown = Math.sqrt(next * next - sigmaUp * sigmaUp);
  const [sampleCoef, outputCoef] = eulerCoefficients(predictionType, sigma, sigmaDown - sigma);
  const noise = ops.noise();
  const prevSample = combine(ops, [[sampleCoef, sample], [outputCoef, modelOutput], [sigmaUp, noise]]);
  ops.release(noise);
  return prevSample;
}

/**
 * Refuse what Euler ancestral does not implement, naming the key.
 * @param {Readonly<Record<string, unknown>>} c
 */
function checkSupported(c) {
  requireOneOf(NAME, c, "prediction_type", ["epsilon", "v_prediction"]);
  requireOneOf(NAME, c, "timestep_spacing", ["linspace", "leading", "trailing"]);
  requireOneOf(NAME, c, "rescale_betas_zero_snr", [false]);
}

/**
 * Euler ancestral over tensors of type T, updated through `ops.combine`, with
 * `ops.noise()` drawn once per step. Drive it with `setTimesteps(n)` (or
 * `setTimesteps(n, {strength})` and `addNoise` for image-to-image), then for
 * each i in order `step(model(scaleModelInput(x, timesteps[i])), timesteps[i], x)`.
 * @template T
 * @extends {EulerBase<T>}
 */
export class EulerAncestralDiscrete extends EulerBase {
  /**
   * Build it as `EulerAncestralDiscreteScheduler.from_config(config, **overrides)` would.
   * @param {Readonly<Record<string, unknown>>} config  A diffusers scheduler config (any class's).
   * @param {TensorOps<T>} ops
   * @param {Readonly<Record<string, unknown>>} [overrides]  Keys that win over config's.
   */
  constructor(config, ops, overrides = {}) {
    super(resolveConfig(DEFAULTS, config, overrides), ops, {
      name: NAME, check: checkSupported, update: ancestralUpdate,
    });
  }
}
