// The schedulers a user can pick by name (CLI flag, page setting), and how
// each is built from the model's own scheduler config: as diffusers'
// `Class.from_config(model_scheduler_config, **overrides)` builds it.

import { SchedulerError } from "./common.js";
import { DPMSolverMultistep } from "./dpmpp_2m.js";
import { PNDM } from "./pndm.js";

export { SchedulerError } from "./common.js";
export { DPMSolverMultistep } from "./dpmpp_2m.js";
export { PNDM } from "./pndm.js";

/** @template T @typedef {import("./common.js").TensorOps<T>} TensorOps */

/**
 * What every scheduler offers. Loop: `setTimesteps(n)`; for each t of
 * `timesteps` in order, `next = step(model(scaleModelInput(x, t), t), t, x)`;
 * the caller owns (and releases) x, the model output and next; `dispose()` at the end.
 * @template T
 * @typedef {object} Scheduler
 * @property {number[]} timesteps
 * @property {number} initNoiseSigma
 * @property {Readonly<Record<string, unknown>>} config
 * @property {(steps: number) => void} setTimesteps
 * @property {(sample: T, t: number) => T} scaleModelInput
 * @property {(modelOutput: T, t: number, sample: T) => T} step
 * @property {() => void} dispose
 */

/**
 * A scheduler class and the config keys the name fixes.
 * @typedef {object} SchedulerEntry
 * @property {typeof DPMSolverMultistep | typeof PNDM} Scheduler
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
