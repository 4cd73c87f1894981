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
 * What the schedulers need from a tensor backend.
 * `combine` returns a NEW tensor, sum(coef * tensor) over 1..4 terms, owned by
 * the caller; `release` frees a tensor.
 * @template T
 * @typedef {{ combine(terms: Array<[number, T]>): T, release(t: T): void }} TensorOps
 */

/** The most terms one `TensorOps.combine` call takes. */
export const MAX_TERMS = 4;

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
 * `ops.combine` for any number of terms: more than MAX_TERMS are folded into
 * partial sums, which are released once used.
 * @template T
 * @param {TensorOps<T>} ops
 * @param {Array<[number, T]>} terms
 * @returns {T}
 */
export function combine(ops, terms) {
  let pending = terms;
  /** @type {T | null} */
  let partial = null;
  while (pending.length > MAX_TERMS) {
    const next = ops.combine(pending.slice(0, MAX_TERMS));
    if (partial !== null) ops.release(partial);
    partial = next;
    pending = [[1, next], ...pending.slice(MAX_TERMS)];
  }
  const out = ops.combine(pending);
  if (partial !== null) ops.release(partial);
  return out;
}
