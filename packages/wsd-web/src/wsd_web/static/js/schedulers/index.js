// The schedulers a user can pick by name (CLI flag, page setting), and how
// each is built from the model's own scheduler config: as diffusers'
// `Class.from_config(model_scheduler_config, **overrides)` builds it.

import { SchedulerError } from "./common.js";
import { DDIM } from "./ddim.js";
import { DPMSolverMultistep } from "./dpmpp_2m.js";
import { EulerDiscrete } from "./euler.js";
import { EulerAncestralDiscrete } from "./euler_ancestral.js";
import { LCM } from "./lcm.js";
import { PNDM } from "./pndm.js";

export { SchedulerError } from "./common.js";
export { DDIM } from "./ddim.js";
export { DPMSolverMultistep } from "./dpmpp_2m.js";
export { EulerDiscrete } from "./euler.js";
export { EulerAncestralDiscrete } from "./euler_ancestral.js";
export { LCM } from "./lcm.js";
export { PNDM } from "./pndm.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */
/** @typedef {import("./common.js").TimestepOptions} TimestepOptions */

/**
 * What every scheduler offers. Loop: `setTimesteps(n)`; x = initial noise *
 * `initNoiseSigma` (read after setTimesteps); for each t of `timesteps` in
 * order, `input = scaleModelInput(x, t)`, `next = step(model(input, t), t, x)`;
 * the caller owns (and releases) x, the model output and next, and `input`
 * when it is not x itself (Euler schedulers scale into a new tensor);
 * `dispose()` at the end. Timesteps are integers except for the Euler
 * schedulers' (float32 values).
 * Image-to-image, as diffusers' StableDiffusionImg2ImgPipeline: `setTimesteps(n,
 * {strength})` plans the last steps only (`timesteps` is that cut list); then
 * x = `addNoise(x0, noise, timesteps[0])` (x0 the encoded image, noise standard
 * normal from the generation's generator), and the same loop. `addNoise` takes
 * the timestep of the step about to run (inpainting re-noises x0 to
 * timesteps[i + 1] after step i); the DDIM, PNDM and LCM schedulers take any
 * training timestep.
 * @template T
 * @typedef {object} Scheduler
 * @property {number[]} timesteps
 * @property {number} initNoiseSigma
 * @property {Readonly<Record<string, unknown>>} config
 * @property {(steps: number, options?: TimestepOptions) => void} setTimesteps
 * @property {(sample: T, t: number) => T} scaleModelInput
 * @property {(modelOutput: T, t: number, sample: T) => T} step
 * @property {(original: T, noise: T, t: number) => T} addNoise
 * @property {() => void} dispose
 */

/**
 * A scheduler class and the config keys the name fixes.
 * @typedef {object} SchedulerEntry
 * @property {typeof DPMSolverMultistep | typeof PNDM | typeof DDIM | typeof EulerDiscrete
 *   | typeof EulerAncestralDiscrete | typeof LCM} Scheduler
 * @property {Readonly<Record<string, unknown>>} overrides
 */

/** @type {Readonly<Record<string, SchedulerEntry>>} */
export const SCHEDULERS = Object.freeze({
  "dpmpp-2m": Object.freeze({
    Scheduler: DPMSolverMultistep,
    overrides: Object.freeze({ algorithm_type: "dpmsolver++", solver_order: 2, use_karras_sigmas: false }),
  }),
  "dpmpp-2m-karras": Object.freeze({
    Scheduler: DPMSolverMultistep,
    overrides: Object.freeze({ algorithm_type: "dpmsolver++", solver_order: 2, use_karras_sigmas: true }),
  }),
  // PNDM as the model's config has it: SD 1.x configs set skip_prk_steps (PLMS).
  pndm: Object.freeze({ Scheduler: PNDM, overrides: Object.freeze({}) }),
  // DDIM with eta 0; clip_sample as the config has it (DDIM's default is true).
  ddim: Object.freeze({ Scheduler: DDIM, overrides: Object.freeze({}) }),
  // Euler; a config's use_karras_sigmas is honoured.
  euler: Object.freeze({ Scheduler: EulerDiscrete, overrides: Object.freeze({}) }),
  "euler-a": Object.freeze({ Scheduler: EulerAncestralDiscrete, overrides: Object.freeze({}) }),
  // For LCM-distilled models (or LCM-LoRA): few steps, at most original_inference_steps.
  lcm: Object.freeze({ Scheduler: LCM, overrides: Object.freeze({}) }),
});

/**
 * Build the named scheduler from a model's scheduler config (scheduler_config.json,
 * whichever class saved it).
 * @template T
 * @param {string} name  A key of SCHEDULERS.
 * @param {Readonly<Record<string, unknown>>} modelConfig
 * @param {TensorOps<T>} ops
 * @returns {Scheduler<T>}
 */
export function createScheduler(name, modelConfig, ops) {
  if (!Object.hasOwn(SCHEDULERS, name)) {
    throw new SchedulerError(
      `unknown scheduler ${JSON.stringify(name)}; choose one of: ${Object.keys(SCHEDULERS).join(", ")}`,
    );
  }
  const { Scheduler, overrides } = SCHEDULERS[name];
  return new Scheduler(modelConfig, ops, overrides);
}
