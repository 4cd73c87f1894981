// What the pipelines need of the schedulers: the registry name of the
// scheduler a model was trained with, the ones that can run it, and the
// schedulers' tensor operations on the GPU (the library's compiled
// combine1 .. combine<max_terms> and clamp kernels, noise from the
// generation's generator).

import { SCHEDULERS, createScheduler } from "../schedulers/index.js";

/** @typedef {import("../sd_model.js").SDModel} SDModel */
/** @typedef {import("../sd_model.js").SchedulerInfo} SchedulerInfo */
/** @typedef {import("../torch_random.js").TorchGenerator} TorchGenerator */
/** @typedef {import("@mlc-ai/web-runtime").Tensor} Tensor */

/** diffusers scheduler classes and the registry name that reproduces each. */
const DEFAULT_SCHEDULERS = Object.freeze({
  PNDMScheduler: "pndm",
  DPMSolverMultistepScheduler: "dpmpp-2m",
  DDIMScheduler: "ddim",
  EulerDiscreteScheduler: "euler",
  EulerAncestralDiscreteScheduler: "euler-a",
  LCMScheduler: "lcm",
});

/**
 * The registry name of the scheduler a model's config names (what diffusers would run).
 * @param {{class_name: string, config: Record<string, unknown>}} scheduler
 * @returns {string}
 */
export function defaultSchedulerName(scheduler) {
  if (scheduler.class_name === "DPMSolverMultistepScheduler" && scheduler.config.use_karras_sigmas) {
    return "dpmpp-2m-karras";
  }
  const name = DEFAULT_SCHEDULERS[/** @type {keyof typeof DEFAULT_SCHEDULERS} */ (scheduler.class_name)];
  // A class the app does not implement: the most broadly useful solver instead.
  return name ?? "dpmpp-2m";
}

/**
 * The library's kernel that sums `terms` coefficient * tensor products.
 * @param {number} terms
 */
function combineFunction(terms) {
  return `combine${terms}`;
}

/**
 * The names of the library's combine kernels: combine1 .. combine<maxTerms>.
 * @param {number} maxTerms
 * @returns {string[]}
 */
export function combineFunctions(maxTerms) {
  return Array.from({ length: maxTerms }, (_, i) => combineFunction(i + 1));
}

/**
 * The registry names that can run a model with this scheduler entry (a
 * scheduler that refuses the config, e.g. its prediction type, is left out).
 * @param {Pick<SchedulerInfo, "config" | "max_terms">} scheduler  The manifest's.
 * @returns {string[]}
 */
export function availableSchedulers({ config, max_terms: maxTerms }) {
  /** @type {import("../schedulers/common.js").TensorOps<null>} */
  const none = { maxTerms, combine: () => null, release: () => {}, noise: () => null };
  return Object.keys(SCHEDULERS).filter((name) => {
    try {
      createScheduler(name, config, none).dispose();
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * The schedulers' tensor operations on the GPU: linear combinations through
 * the compiled combine kernels, the clamp kernel, noise of `shape` from
 * `generator` (uploaded).
 * Every tensor returned is detached from tvm scopes; its owner disposes it.
 * @param {SDModel} model
 * @param {number[]} shape  The latent shape.
 * @param {TorchGenerator} generator
 * @returns {import("../schedulers/common.js").TensorOps<Tensor>}
 */
export function gpuTensorOps(model, shape, generator) {
  const session = model.session;
  return {
    maxTerms: model.manifest.scheduler.max_terms,
    combine: (terms) => session.persist(() => {
      const coeffs = session.tensor([terms.length], Float32Array.from(terms, ([c]) => c));
      return model.call(combineFunction(terms.length), ...terms.map(([, x]) => x), coeffs);
    }),
    release: (t) => t.dispose(),
    noise: () => session.persist(() => session.tensor(shape, generator.randn(shape))),
    clamp: (t, limit) => session.persist(() => model.call("clamp", t, session.tensor([1], new Float32Array([limit])))),
  };
}
