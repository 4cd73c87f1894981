// Runs the JS schedulers on fixtures that test_scheduler_parity.py made with
// diffusers, and writes what they produce for the test to compare:
//   node scheduler_driver.mjs CASES.json RESULTS.json
// CASES.json: {cases: [{id, scheduler, config, sweep: [steps...],
//   runs: [{steps, sample, model_outputs: [[...] per step]}]}]}
// RESULTS.json: {cases: [{id, config, sweep: {steps: timesteps, or null if refused},
//   runs: [{steps, timesteps, samples: [[...] after each step]}]}]}
// Tensors are float32 on the CPU; the loop releases each sample once the next
// exists, as the app does, and checks that nothing is left alive at the end.

import { readFileSync, writeFileSync } from "node:fs";

import { SchedulerError, createScheduler } from "../../src/wsd_web/static/js/schedulers/index.js";
import { cpuTensorOps } from "./cpu_tensor_ops.mjs";

/**
 * @typedef {object} Run
 * @property {number} steps
 * @property {number[]} sample
 * @property {number[][]} model_outputs
 */

/**
 * @typedef {object} Case
 * @property {string} id
 * @property {string} scheduler
 * @property {Record<string, unknown>} config
 * @property {number[]} sweep
 * @property {Run[]} runs
 */

/**
 * @param {Case} c
 */
function runCase(c) {
  const { ops, live } = cpuTensorOps();
  const scheduler = createScheduler(c.scheduler, c.config, ops);
  /** @type {Record<string, number[] | null>} null: refused */
  const sweep = {};
  for (const steps of c.sweep) {
    try {
      scheduler.setTimesteps(steps);
      sweep[steps] = scheduler.timesteps;
    } catch (e) {
      if (!(e instanceof SchedulerError)) throw e;
      sweep[steps] = null;
    }
  }
  const runs = c.runs.map((run) => {
    scheduler.setTimesteps(run.steps);
    const timesteps = [...scheduler.timesteps];
    /** @type {number[][]} */
    const samples = [];
    /** @type {Float32Array} */
    let sample = Float32Array.from(run.sample);
    let owned = false;
    timesteps.forEach((t, i) => {
      const modelOutput = Float32Array.from(run.model_outputs[i]);
      const next = scheduler.step(modelOutput, t, scheduler.scaleModelInput(sample, t));
      if (owned) ops.release(sample);
      sample = next;
      owned = true;
      samples.push(Array.from(sample));
    });
    if (owned) ops.release(sample);
    return { steps: run.steps, timesteps, samples };
  });
  scheduler.dispose();
  if (live() !== 0) throw new Error(`${c.id}: ${live()} tensors still alive after dispose`);
  return { id: c.id, config: scheduler.config, sweep, runs };
}

const [casesPath, resultsPath] = process.argv.slice(2);
const { cases } = /** @type {{cases: Case[]}} */ (JSON.parse(readFileSync(casesPath, "utf8")));
// JSON has no infinities; write them as Python's json does, so the test reads them back.
const json = JSON.stringify({ cases: cases.map(runCase) }, (_, v) =>
  typeof v === "number" && !Number.isFinite(v) ? `@${v}` : v);
writeFileSync(resultsPath, json.replace(/"@(-?Infinity|NaN)"/g, "$1"));
