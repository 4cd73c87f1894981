// PNDM: diffusers' PNDMScheduler, Stable Diffusion 1.x's own scheduler. With
// skip_prk_steps (SD's setting) it is PLMS, a linear multistep method over the
// model's noise predictions; without, it first takes Runge-Kutta (PRK) steps.
//
// Semantics reproduced from diffusers 0.42 (and easy to get wrong):
// - The spacings yield ascending integer timesteps t0 < ... < tk; PLMS walks
//   them down with the second-largest repeated: [tk, tk-1, tk-1, tk-2, ..., t0].
//   The step at the repeat evaluates the model at the first step's target and
//   redoes the first step with the mean of both outputs.
// - Every step moves back by num_train_timesteps // steps, whatever the
//   spacing ("linspace" and "trailing" schedules included), and a target
//   below 0 uses final_alpha_cumprod (1 with set_alpha_to_one, else
//   alphas_cumprod[0]).
// - The second PLMS step's output is not kept in the history ("ets"); the
//   history holds at most the last 4 outputs (Adams-Bashforth orders 1-4).
// - With v_prediction the output is turned into a noise prediction after the
//   history is combined, using the sample the step starts from.
// - PRK: four evaluations per step with weights 1/6, 1/3, 1/3, 1/6; only the
//   first evaluation of each step enters the history. The warm-up takes the
//   top 4 timesteps (12 evaluations), so it needs at least 4 steps (diffusers
//   fails on fewer with a numpy broadcast error; we say so).
// - Image-to-image: the strength cut keeps one timestep more than
//   int(n * strength), the plan having n + 1 (the repeat). PNDM has no begin
//   index: its step counter starts over at the cut, so the first steps that
//   run are the PLMS warm-up (the second one redoing the first from its start)
//   or the 12 Runge-Kutta evaluations, which take their starting timesteps
//   from the uncut warm-up, as diffusers' prk_timesteps[counter // 4 * 4] does.

import {
  SchedulerBase, SchedulerError, alphasCumprod, beginIndex, combine, noiseByAlphas, requireOneOf, requireStepCount,
  requireTimestep, requireTrainingRange, resolveConfig, spacedTimesteps,
} from "./common.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

const NAME = "PNDMScheduler";

/** PNDMScheduler.__init__'s keys and defaults (diffusers 0.42). */
const DEFAULTS = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: "epsilon",
  timestep_spacing: "leading",
  steps_offset: 0,
});

/** Linear multistep (Adams-Bashforth) weights by history length, newest first. */
const PLMS_WEIGHTS = [
  [1],
  [3 / 2, -1 / 2],
  [23 / 12, -16 / 12, 5 / 12],
  [55 / 24, -59 / 24, 37 / 24, -9 / 24],
];

/** Runge-Kutta weights of the four evaluations of one PRK step. */
const PRK_WEIGHTS = [1 / 6, 1 / 3, 1 / 3, 1 / 6];

/**
 * PNDM (PLMS, with optional PRK warm-up) over tensors of type T, updated
 * through `ops.combine`. Drive it with `setTimesteps(n)` (or
 * `setTimesteps(n, {strength})` and `addNoise` for image-to-image), then
 * `step(modelOutput, timesteps[i], sample)` for each i in order.
 * @template T
 * @extends {SchedulerBase<T>}
 */
export class PNDM extends SchedulerBase {
  /** @type {TensorOps<T>} */
  #ops;
  /** @type {Float64Array} */
  #alphasCumprod;
  /** @type {number} */
  #finalAlphaCumprod;
  /** num_train_timesteps // steps. */
  #stride = 0;
  /** The Runge-Kutta warm-up's timesteps, uncut. @type {number[]} */
  #prk = [];
  #counter = 0;
  /** Model outputs kept for the multistep formula, oldest first; owned here. @type {T[]} */
  #ets = [];
  /** The sample a multi-evaluation step started from; owned here. @type {T | null} */
  #startSample = null;
  /** PRK: the weighted sum of this step's evaluations so far; owned here. @type {T | null} */
  #prkSum = null;

  /**
   * Build it as `PNDMScheduler.from_config(config, **overrides)` would.
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
    requireOneOf(NAME, c, "skip_prk_steps", [false, true]);
    requireOneOf(NAME, c, "set_alpha_to_one", [false, true]);
    this.#alphasCumprod = alphasCumprod(c, NAME);
    this.#finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.#alphasCumprod[0];
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
    const stride = Math.floor(trainSteps / steps);
    const base = spacedTimesteps(c, steps, true).reverse(); // ascending
    /** @type {number[]} */
    let prk = [];
    let plms;
    if (c.skip_prk_steps) {
      plms = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      // numpy: (base[-4:].repeat(2) + tile([0, stride // 2], 4))[:-1].repeat(2)[1:-1][::-1]
      if (steps < 4) {
        throw new SchedulerError(
          `${NAME}: the Runge-Kutta warm-up (skip_prk_steps false) needs at least 4 steps, got ${steps}; ` +
          "use more steps or a config with skip_prk_steps true",
        );
      }
      const half = Math.floor(stride / 2);
      const pairs = base.slice(-4).flatMap((t) => [t, t + half]).slice(0, -1);
      prk = pairs.flatMap((t) => [t, t]).slice(1, -1).reverse();
      plms = base.slice(0, Math.max(0, base.length - 3)).reverse();
    }
    // numpy's float arange gives "trailing" one point too many for some counts
    // (61, 103, 121, 122 steps of 1000), hence a timestep -1, which diffusers'
    // PNDM reads as alphas_cumprod[-1], the noisiest entry: refuse instead.
    requireTrainingRange(NAME, c, steps, base);
    const planned = [...prk, ...plms];
    const begin = beginIndex(NAME, steps, strength, planned.length);
    this.#reset();
    this.#stride = stride;
    this.#prk = prk;
    this.timesteps = planned.slice(begin);
  }

  /**
   * One step from timestep t to the next one.
   * @param {T} modelOutput  The model's prediction at (sample, t); the caller keeps it.
   * @param {number} t  Must be `timesteps[i]` for the i-th call since `setTimesteps`.
   * @param {T} sample  x_t; the caller keeps it.
   * @returns {T}  The new sample, owned by the caller.
   */
  step(modelOutput, t, sample) {
    const i = this.#counter;
    requireTimestep(NAME, this.timesteps, i, t);
    const prevSample = i < this.#prk.length && !this.config.skip_prk_steps
      ? this.#stepPrk(modelOutput, t, sample)
      : this.#stepPlms(modelOutput, t, sample);
    this.#counter = i + 1;
    return prevSample;
  }

  /**
   * `original` noised to timestep t, as diffusers' add_noise (image-to-image: t = timesteps[0]).
   * @param {T} original  The caller keeps it.
   * @param {T} noise  Standard normal; the caller keeps it.
   * @param {number} t  A training timestep.
   * @returns {T}  sqrt(a_t) original + sqrt(1 - a_t) noise, owned by the caller.
   */
  addNoise(original, noise, t) {
    return noiseByAlphas(NAME, this.#ops, this.#alphasCumprod, original, noise, t);
  }

  /** Release every tensor held; `setTimesteps` is needed before stepping again. */
  dispose() {
    this.#reset();
    this.timesteps = [];
  }

  /**
   * @param {T} modelOutput
   * @param {number} t
   * @param {T} sample
   * @returns {T}
   */
  #stepPlms(modelOutput, t, sample) {
    const ops = this.#ops;
    let from = t;
    let to = t - this.#stride;
    if (this.#counter === 1) {
      // The repeated timestep: redo the first step from its start, with the
      // mean of the outputs at both ends, and keep this output out of the history.
      from = t + this.#stride;
      to = t;
    } else {
      while (this.#ets.length > 3) ops.release(/** @type {T} */ (this.#ets.shift()));
      this.#ets.push(combine(ops, [[1, modelOutput]]));
    }
    const ets = this.#ets;
    if (ets.length === 1 && this.#counter === 0) {
      this.#startSample = combine(ops, [[1, sample]]);
      return this.#previousSample(sample, from, to, [[1, modelOutput]]);
    }
    if (ets.length === 1 && this.#counter === 1) {
      const start = /** @type {T} */ (this.#startSample);
      this.#startSample = null;
      const out = this.#previousSample(start, from, to, [[0.5, modelOutput], [0.5, ets[0]]]);
      ops.release(start);
      return out;
    }
    const weights = PLMS_WEIGHTS[ets.length - 1];
    /** @type {Array<[number, T]>} */
    const terms = weights.map((w, k) => [w, ets[ets.length - 1 - k]]);
    return this.#previousSample(sample, from, to, terms);
  }

  /**
   * @param {T} modelOutput
   * @param {number} t
   * @param {T} sample
   * @returns {T}
   */
  #stepPrk(modelOutput, t, sample) {
    const ops = this.#ops;
    const i = this.#counter;
    const phase = i % 4;
    const to = t - (i % 2 ? 0 : Math.floor(this.#stride / 2));
    const from = this.#prk[i - phase];
    const weight = PRK_WEIGHTS[phase];
    /** @type {Array<[number, T]>} */
    let noise = [[1, modelOutput]];
    if (phase === 0) {
      this.#ets.push(combine(ops, [[1, modelOutput]]));
      this.#startSample = combine(ops, [[1, sample]]);
      this.#prkSum = combine(ops, [[weight, modelOutput]]);
    } else if (phase < 3) {
      const sum = /** @type {T} */ (this.#prkSum);
      this.#prkSum = combine(ops, [[1, sum], [weight, modelOutput]]);
      ops.release(sum);
    } else {
      noise = [[1, /** @type {T} */ (this.#prkSum)], [weight, modelOutput]];
    }
    const out = this.#previousSample(/** @type {T} */ (this.#startSample), from, to, noise);
    if (phase === 3) {
      // The step is complete: its start and running sum are no longer needed.
      ops.release(/** @type {T} */ (this.#prkSum));
      ops.release(/** @type {T} */ (this.#startSample));
      this.#prkSum = null;
      this.#startSample = null;
    }
    return out;
  }

  /**
   * x at timestep `to` from x at timestep `from` and a noise prediction given as
   * weighted model outputs (PNDM paper, formula 9):
   * x_to = sqrt(a_to / a_from) x_from - (a_to - a_from) / (a_from sqrt(1 - a_to)
   *        + sqrt(a_from (1 - a_from) a_to)) eps
   * With v_prediction, eps = sqrt(a_from) v + sqrt(1 - a_from) x_from.
   * @param {T} sample
   * @param {number} from
   * @param {number} to
   * @param {Array<[number, T]>} outputs
   * @returns {T}
   */
  #previousSample(sample, from, to, outputs) {
    const ac = this.#alphasCumprod; // setTimesteps checked that from and to fit in it
    const aFrom = ac[from];
    const aTo = to >= 0 ? ac[to] : this.#finalAlphaCumprod;
    const bFrom = 1 - aFrom;
    const sampleCoef = Math.sqrt(aTo / aFrom);
    const noiseCoef = (aTo - aFrom) / (aFrom * Math.sqrt(1 - aTo) + Math.sqrt(aFrom * bFrom * aTo));
    if (this.config.prediction_type === "v_prediction") {
      return combine(this.#ops, [
        [sampleCoef - noiseCoef * Math.sqrt(bFrom), sample],
        ...outputs.map(([w, x]) => /** @type {[number, T]} */ ([-noiseCoef * Math.sqrt(aFrom) * w, x])),
      ]);
    }
    return combine(this.#ops, [
      [sampleCoef, sample],
      ...outputs.map(([w, x]) => /** @type {[number, T]} */ ([-noiseCoef * w, x])),
    ]);
  }

  #reset() {
    const ops = this.#ops;
    for (const x of this.#ets) ops.release(x);
    if (this.#startSample !== null) ops.release(this.#startSample);
    if (this.#prkSum !== null) ops.release(this.#prkSum);
    this.#ets = [];
    this.#startSample = null;
    this.#prkSum = null;
    this.#counter = 0;
  }
}
