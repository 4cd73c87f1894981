// What every diffusers scheduler shares: the training noise schedule
// (betas, alphas_cumprod), numpy's timestep arithmetic reproduced exactly, the
// from_config rule for picking a class's keys out of another class's config,
// and linear combinations of tensors through a caller-supplied ops object.
//
// Schedulers compute their per-step coefficients here in float64 and never
// read tensor values: every tensor update is a sum of coefficient * tensor,
// executed by `TensorOps.combine` (a compiled GPU kernel in the app, plain
// arrays in tests).

/**
 * What the schedulers need from a tensor backend. Every tensor a method
 * returns is NEW and owned by the caller, who frees it with `release`.
 * - `maxTerms`: the most terms one `combine` call takes, at least 2: in the app,
 *   the number of compiled combine kernels (the manifest's `scheduler.max_terms`).
 * - `combine(terms)`: sum(coef * tensor) over 1..maxTerms terms (see `combine`
 *   below for more).
 * - `release(t)`: frees a tensor.
 * - `noise()`: standard normal noise of the latent shape, drawn from the
 *   generation's seeded torch-compatible generator: the SAME generator whose
 *   first draw made the initial latents (in the app, `TorchGenerator.randn(shape)`
 *   uploaded to the GPU), just as diffusers passes `generator` to
 *   `scheduler.step`. Schedulers call it exactly where diffusers' `step` calls
 *   `randn_tensor` (Euler ancestral: every step; LCM: every step but the last),
 *   so the random stream stays aligned with diffusers'.
 * - `clamp(t, limit)` (optional): t clamped to [-limit, limit], element-wise.
 *   Only schedulers configured with `clip_sample` (DDIM, LCM) need it; they
 *   refuse to be built without it.
 * @template T
 * @typedef {{
 *   maxTerms: number,
 *   combine(terms: Array<[number, T]>): T,
 *   release(t: T): void,
 *   noise(): T,
 *   clamp?: (t: T, limit: number) => T,
 * }} TensorOps
 */

/** A scheduler was configured or driven in a way it does not support. */
export class SchedulerError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "SchedulerError";
  }
}

/**
 * numpy's `round` (and `rint`): round half to even.
 * @param {number} x
 * @returns {number}
 */
export function roundHalfEven(x) {
  const floor = Math.floor(x);
  const frac = x - floor; // exact for |x| < 2**52
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * numpy's `linspace(start, stop, num)` (endpoint included) in float64, with
 * numpy's arithmetic: `i * ((stop - start) / (num - 1)) + start`, the last
 * element set to `stop` exactly.
 * @param {number} start
 * @param {number} stop
 * @param {number} num
 * @returns {number[]}
 */
export function linspace(start, stop, num) {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * numpy's float `arange(start, stop, step)`: its length is
 * `ceil((stop - start) / step)` and element i is `start + i * delta`, where
 * numpy takes `delta` as `(start + step) - start`, not `step` itself.
 * @param {number} start
 * @param {number} stop
 * @param {number} step
 * @returns {number[]}
 */
export function arange(start, stop, step) {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length }, (_, i) => start + i * delta);
}

/**
 * The keys a scheduler class takes, with its defaults (its `__init__` signature).
 * @typedef {Readonly<Record<string, unknown>>} ConfigDefaults
 */

/**
 * Resolve a class's config the way diffusers' `Class.from_config(config, **overrides)`
 * does: take the keys this class knows from `config`, except the ones that
 * config lists in `_use_default_values` (keys the saving class never set, so
 * they must not carry its defaults over) and private `_` keys; ignore keys of
 * other classes; fill the rest with this class's defaults; overrides win.
 * @param {ConfigDefaults} defaults
 * @param {Readonly<Record<string, unknown>>} config
 * @param {Readonly<Record<string, unknown>>} overrides
 * @returns {Readonly<Record<string, unknown>>}
 */
export function resolveConfig(defaults, config, overrides) {
  const usedDefaults = Array.isArray(config._use_default_values) ? config._use_default_values : [];
  /** @type {Record<string, unknown>} */
  const resolved = {};
  for (const [key, value] of Object.entries(defaults)) {
    if (Object.hasOwn(overrides, key)) {
      resolved[key] = overrides[key];
    } else if (Object.hasOwn(config, key) && !usedDefaults.includes(key)) {
      resolved[key] = config[key];
    } else {
      resolved[key] = value;
    }
  }
  return Object.freeze(resolved);
}

/**
 * Refuse a config value outside the supported set.
 * @param {string} scheduler
 * @param {Readonly<Record<string, unknown>>} config
 * @param {string} key
 * @param {readonly unknown[]} supported
 */
export function requireOneOf(scheduler, config, key, supported) {
  if (!supported.includes(config[key])) {
    throw new SchedulerError(
      `${scheduler}: ${key}=${JSON.stringify(config[key])} is not supported ` +
      `(supported: ${supported.map((v) => JSON.stringify(v)).join(", ")}); fix the scheduler config`,
    );
  }
}

/**
 * The training noise schedule, as diffusers builds it: betas in float32
 * (torch float32 tensors; we round each beta with Math.fround), then
 * alphas_cumprod = cumprod(1 - beta), accumulated in float64 and stored in
 * float32 as torch's CPU cumprod does. Every value is a float32 held in a
 * float64; what the schedulers derive from it is float64.
 * @param {Readonly<Record<string, unknown>>} config  A resolved config
 *   (num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas).
 * @param {string} scheduler  Its name, for errors.
 * @returns {Float64Array} alphas_cumprod, num_train_timesteps long.
 */
export function alphasCumprod(config, scheduler) {
  const betas = trainingBetas(config, scheduler);
  const out = new Float64Array(betas.length);
  let product = 1;
  for (let i = 0; i < betas.length; i++) {
    product *= Math.fround(1 - betas[i]);
    out[i] = Math.fround(product);
  }
  return out;
}

/**
 * @param {Readonly<Record<string, unknown>>} config
 * @param {string} scheduler
 * @returns {number[]}
 */
function trainingBetas(config, scheduler) {
  const count = Number(config.num_train_timesteps);
  if (!Number.isInteger(count) || count < 2) {
    throw new SchedulerError(`${scheduler}: num_train_timesteps=${config.num_train_timesteps} must be an integer >= 2`);
  }
  const trained = config.trained_betas;
  if (trained !== null && trained !== undefined) {
    if (!Array.isArray(trained) || trained.length !== count || !trained.every((b) => typeof b === "number")) {
      throw new SchedulerError(`${scheduler}: trained_betas must be ${count} numbers (num_train_timesteps)`);
    }
    return trained.map((b) => Math.fround(b));
  }
  const start = Number(config.beta_start);
  const end = Number(config.beta_end);
  switch (config.beta_schedule) {
    case "linear":
      return float32Linspace(start, end, count);
    case "scaled_linear":
      // Latent diffusion's schedule: linear in sqrt(beta), squared in float32.
      return float32Linspace(start ** 0.5, end ** 0.5, count).map((b) => Math.fround(b * b));
    case "squaredcos_cap_v2":
      return cosineBetas(count);
    default:
      throw new SchedulerError(
        `${scheduler}: beta_schedule=${JSON.stringify(config.beta_schedule)} is not supported ` +
        `(supported: "linear", "scaled_linear", "squaredcos_cap_v2"); fix the scheduler config`,
      );
  }
}

/**
 * torch.linspace in float32: evaluated in float64 and rounded once. (torch's
 * own float32 arithmetic differs by an ulp on some elements and depends on the
 * CPU's vector width, so no reproduction is exact; this is the nearest float32.)
 * @param {number} start
 * @param {number} end
 * @param {number} count
 * @returns {number[]}
 */
function float32Linspace(start, end, count) {
  return linspace(start, end, count).map((v) => Math.fround(v));
}

/**
 * The Glide cosine schedule (diffusers' betas_for_alpha_bar, "cosine"): betas
 * from alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, capped at 0.999.
 * @param {number} count
 * @returns {number[]}
 */
function cosineBetas(count) {
  /** @param {number} t */
  const alphaBar = (t) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  return Array.from({ length: count }, (_, i) =>
    Math.fround(Math.min(1 - alphaBar((i + 1) / count) / alphaBar(i / count), 0.999)));
}

/**
 * Check a step count.
 * @param {string} scheduler
 * @param {number} steps
 */
export function requireStepCount(scheduler, steps) {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new SchedulerError(`${scheduler}: the number of inference steps must be a positive integer, got ${steps}`);
  }
}

/**
 * `ops.combine` for any number of terms: more than `ops.maxTerms` are folded
 * into partial sums, which are released once used.
 * @template T
 * @param {TensorOps<T>} ops
 * @param {Array<[number, T]>} terms
 * @returns {T}
 */
export function combine(ops, terms) {
  const most = ops.maxTerms;
  if (!Number.isInteger(most) || most < 2) {
    throw new SchedulerError(
      `TensorOps.maxTerms=${most} must be an integer >= 2 (the number of compiled combine kernels); fix the tensor backend`,
    );
  }
  let pending = terms;
  /** @type {T | null} */
  let partial = null;
  while (pending.length > most) {
    const next = ops.combine(pending.slice(0, most));
    if (partial !== null) ops.release(partial);
    partial = next;
    pending = [[1, next], ...pending.slice(most)];
  }
  const out = ops.combine(pending);
  if (partial !== null) ops.release(partial);
  return out;
}

/**
 * What every scheduler class shares: the resolved config, the planned
 * timesteps, and the defaults of a scheduler that neither scales the model
 * input nor starts from scaled noise (subclasses override those that differ).
 * @template T  The tensor type.
 */
export class SchedulerBase {
  /** @type {Readonly<Record<string, unknown>>} */
  #config;

  /** @param {Readonly<Record<string, unknown>>} config  The resolved config. */
  constructor(config) {
    this.#config = config;
    /** Timesteps, one per step, from the last `setTimesteps`. @type {number[]} */
    this.timesteps = [];
  }

  /** The resolved config (diffusers' `scheduler.config`). */
  get config() {
    return this.#config;
  }

  /** Standard deviation of the initial noise: the latents start as plain N(0, 1) noise. */
  get initNoiseSigma() {
    return 1.0;
  }

  /**
   * The model input for timestep t: the sample itself (this scheduler does not scale it).
   * @param {T} sample
   * @param {number} _t
   * @returns {T}  `sample`, still owned by the caller.
   */
  scaleModelInput(sample, _t) {
    return sample;
  }
}

/**
 * Check that step() follows the planned timesteps in order: the i-th call
 * since `setTimesteps` must pass `timesteps[i]`.
 * @param {string} scheduler
 * @param {readonly number[]} timesteps
 * @param {number} i
 * @param {number} t
 */
export function requireTimestep(scheduler, timesteps, i, t) {
  if (i >= timesteps.length) {
    throw new SchedulerError(
      `${scheduler}: step ${i + 1} called but setTimesteps planned ${timesteps.length} steps; call setTimesteps first`,
    );
  }
  if (t !== timesteps[i]) {
    throw new SchedulerError(`${scheduler}: step ${i} must be called with timestep ${timesteps[i]}, got ${t}`);
  }
}

/**
 * The options of every scheduler's `setTimesteps(steps, options)`.
 * @typedef {object} TimestepOptions
 * @property {number} [strength]  Image-to-image: the share of the `steps`
 *   planned steps that runs, in (0, 1]; the run starts that far down the
 *   schedule, from the image noised by `addNoise`. Default 1: every step
 *   (text-to-image).
 */

/**
 * Where a run of the given strength begins in the planned timesteps, as
 * diffusers' StableDiffusionImg2ImgPipeline.get_timesteps cuts them: it keeps
 * min(int(steps * strength), steps) steps, so it skips the first
 * t_start = steps - that many timesteps (times the scheduler's order, 1 for
 * all of ours) and gives the scheduler t_start as its begin index. PNDM
 * plans one timestep more than `steps` (PLMS repeats one) and so keeps one more.
 * Where nothing is kept (int(steps * strength) = 0, and not PNDM),
 * diffusers' pipeline noises an empty batch and returns no image: we refuse.
 * @param {string} scheduler
 * @param {number} steps
 * @param {unknown} strength
 * @param {number} planned  How many timesteps the whole schedule has.
 * @returns {number}  The index of the first timestep that runs (diffusers' begin_index).
 */
export function beginIndex(scheduler, steps, strength, planned) {
  const shown = typeof strength === "number" ? String(strength) : JSON.stringify(strength);
  if (typeof strength !== "number" || !(strength > 0 && strength <= 1)) {
    throw new SchedulerError(`${scheduler}: strength=${shown} is not a number in (0, 1]; use a strength in (0, 1]`);
  }
  const begin = steps - Math.min(Math.trunc(steps * strength), steps);
  if (begin >= planned) {
    throw new SchedulerError(
      `${scheduler}: strength=${shown} with ${steps} steps leaves no step to run (int(${steps} * ${shown}) = 0); ` +
      "use a larger strength or more steps",
    );
  }
  return begin;
}

/**
 * diffusers' add_noise of the schedulers that noise by alphas_cumprod (DDIM,
 * PNDM, LCM): sqrt(a_t) original + sqrt(1 - a_t) noise at any training
 * timestep t, with diffusers' float32 coefficients.
 * @template T
 * @param {string} scheduler
 * @param {TensorOps<T>} ops
 * @param {Float64Array} ac  alphas_cumprod
 * @param {T} original
 * @param {T} noise
 * @param {number} t
 * @returns {T}  A new tensor, owned by the caller.
 */
export function noiseByAlphas(scheduler, ops, ac, original, noise, t) {
  if (!Number.isInteger(t) || t < 0 || t >= ac.length) {
    throw new SchedulerError(
      `${scheduler}: addNoise at timestep ${t}: not a training timestep (an integer in [0, ${ac.length}))`,
    );
  }
  const a = ac[t];
  return combine(ops, [[Math.fround(Math.sqrt(a)), original], [Math.fround(Math.sqrt(Math.fround(1 - a))), noise]]);
}

/**
 * Check the timestep of a sigma scheduler's `addNoise`. diffusers' add_noise
 * (with the begin index that img2img sets) noises to the sigma of the step
 * about to run, whatever timestep it is given: sigmas[begin_index] before the
 * first step (img2img), sigmas[step_index] after some (inpainting). Here the
 * timestep must be that step's, `timesteps[i]`.
 * @param {string} scheduler
 * @param {readonly number[]} timesteps
 * @param {number} i  The number of steps taken since `setTimesteps`.
 * @param {number} t
 */
export function requireNoiseTimestep(scheduler, timesteps, i, t) {
  if (i >= timesteps.length) {
    throw new SchedulerError(
      `${scheduler}: addNoise noises to the level of the next step, but no step is left to run; call setTimesteps first`,
    );
  }
  if (t !== timesteps[i]) {
    throw new SchedulerError(
      `${scheduler}: addNoise must be called with the next step's timestep ${timesteps[i]}, got ${t}`,
    );
  }
}

/**
 * One timestep per step, descending, by the configured timestep_spacing, as
 * DDIM, PNDM and the Euler schedulers space them (numpy float math):
 * "linspace" n points over [0, T - 1], "leading" k * (T // n) + steps_offset,
 * "trailing" round(arange(T, 0, -T / n)) - 1 (numpy's float arange yields
 * one point too many, ending on -1, for some n: 61, 103, 121, 122 of 1000).
 * @param {Readonly<Record<string, unknown>>} c  A resolved config.
 * @param {number} steps
 * @param {boolean} round  Round "linspace" half to even to integers (DDIM,
 *   PNDM); else keep its float32 values (Euler: timesteps are float32).
 * @returns {number[]}
 */
export function spacedTimesteps(c, steps, round) {
  const trainSteps = /** @type {number} */ (c.num_train_timesteps);
  switch (c.timestep_spacing) {
    case "linspace":
      return linspace(0, trainSteps - 1, steps).map(round ? roundHalfEven : Math.fround).reverse();
    case "leading": {
      const ratio = Math.floor(trainSteps / steps);
      const offset = /** @type {number} */ (c.steps_offset);
      return Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + offset);
    }
    default: // "trailing"
      return arange(trainSteps, 0, -trainSteps / steps).map((t) => roundHalfEven(t) - 1);
  }
}

/**
 * Refuse timesteps outside the training range, which diffusers would read
 * from the far end of alphas_cumprod (a negative index) or fail on.
 * @param {string} scheduler
 * @param {Readonly<Record<string, unknown>>} c
 * @param {number} steps
 * @param {readonly number[]} timesteps
 */
export function requireTrainingRange(scheduler, c, steps, timesteps) {
  const trainSteps = /** @type {number} */ (c.num_train_timesteps);
  const outside = timesteps.filter((t) => t < 0 || t >= trainSteps);
  if (outside.length > 0) {
    throw new SchedulerError(
      `${scheduler}: timestep_spacing ${JSON.stringify(c.timestep_spacing)} with ${steps} steps gives timesteps ` +
      `${outside.join(", ")}, outside [0, ${trainSteps}); choose another step count or spacing`,
    );
  }
}

/**
 * The training sigmas sqrt((1 - alphas_cumprod) / alphas_cumprod), ascending
 * in timestep, as diffusers computes them: in float32 (torch).
 * @param {Float64Array} ac  alphas_cumprod
 * @returns {number[]}
 */
export function trainingSigmas(ac) {
  return Array.from(ac, (a) => Math.fround(Math.sqrt(Math.fround(Math.fround(1 - a) / a))));
}

/**
 * numpy's `interp(x, arange(len(table)), table)` in float64: linear between
 * neighbouring entries, clamped to the ends.
 * @param {number} x
 * @param {readonly number[]} table
 * @returns {number}
 */
export function interpolate(x, table) {
  if (x <= 0) return table[0];
  if (x >= table.length - 1) return table[table.length - 1];
  const j = Math.floor(x);
  return (table[j + 1] - table[j]) * (x - j) + table[j];
}

/**
 * Karras et al. (2022) sigmas, rho = 7, `steps` of them from sigmaMax down to sigmaMin.
 * @param {number} sigmaMin
 * @param {number} sigmaMax
 * @param {number} steps
 * @returns {number[]}
 */
export function karrasSigmas(sigmaMin, sigmaMax, steps) {
  const rho = 7;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return linspace(0, 1, steps).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/**
 * diffusers' _sigma_to_t: the fractional timestep whose log sigma, linearly
 * interpolated between neighbouring training timesteps, equals log(sigma).
 * The lower neighbour is the argmax of the cumulative count of table entries
 * <= log(sigma) (the last such entry, or 0 when there is none), capped at the
 * second-to-last; the weight is clipped to [0, 1].
 * @param {number} sigma
 * @param {readonly number[]} logSigmas  ascending, float32 values (numpy's log of the float32 table)
 * @returns {number}
 */
export function sigmaToT(sigma, logSigmas) {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let count = 0;
  let best = 0;
  let low = 0;
  logSigmas.forEach((ls, i) => {
    if (logSigma - ls >= 0) count++;
    if (count > best) {
      best = count;
      low = i;
    }
  });
  low = Math.min(low, logSigmas.length - 2);
  const high = low + 1;
  // (low - high) is a float32 difference in numpy.
  const w = Math.min(1, Math.max(0, (logSigmas[low] - logSigma) / Math.fround(logSigmas[low] - logSigmas[high])));
  return (1 - w) * low + w * high;
}

/**
 * The x0 and noise predictions of DDIM-style schedulers as linear forms in
 * (sample, modelOutput), for x_t = sqrt(a) x0 + sqrt(1 - a) eps.
 * @param {unknown} predictionType  "epsilon", "v_prediction" or "sample"
 * @param {number} a  alphas_cumprod at the step's timestep
 * @returns {{x0: [number, number], eps: [number, number]}}  [sample coef, modelOutput coef] each
 */
export function predictions(predictionType, a) {
  const sa = Math.sqrt(a);
  const sb = Math.sqrt(1 - a);
  switch (predictionType) {
    case "epsilon":
      return { x0: [1 / sa, -sb / sa], eps: [0, 1] };
    case "v_prediction":
      return { x0: [sa, -sb], eps: [sb, sa] };
    default: // "sample"
      return { x0: [0, 1], eps: [1 / sb, -sa / sb] };
  }
}

/**
 * Refuse clip_sample when the tensor backend cannot clamp.
 * @template T
 * @param {string} scheduler
 * @param {Readonly<Record<string, unknown>>} c
 * @param {TensorOps<T>} ops
 */
export function requireClampIfClipping(scheduler, c, ops) {
  if (c.clip_sample && typeof ops.clamp !== "function") {
    throw new SchedulerError(
      `${scheduler}: clip_sample=true needs a tensor backend with clamp(); ` +
      "use a config with clip_sample false or provide TensorOps.clamp",
    );
  }
}
