// Runs the JS schedulers on fixtures that test_scheduler_parity.py made with
// diffusers, and writes what they produce for the test to compare:
//   node scheduler_driver.mjs CASES.json RESULTS.json
// CASES.json: {cases: [{id, scheduler, config, sweep: [steps...],
//   runs: [{steps, sample | seed, shape, model_outputs: [[...] per step]}]}]}
// RESULTS.json: {cases: [{id, config, sweep: {steps: timesteps, or null if refused},
//   runs: [{steps, timesteps, init_noise_sigma, sample, inputs: [[...] model input per step],
//   samples: [[...] after each step], noises, next_draw}]}]}
// A run with a seed starts as a diffusers pipeline does: one generator,
// torch.Generator().manual_seed(seed), whose first randn(shape) is the
// initial noise (times initNoiseSigma) and whose later draws are the noise the
// scheduler asks for in its steps (ops.noise()).
// Tensors are float32 on the CPU; the loop releases each sample (and each
// scaled model input) once used, as the app does, and checks that nothing is
// left alive at the end.

import { readFileSync, writeFileSync } from "node:fs";

import { SchedulerError, createScheduler } from "../../src/wsd_web/static/js/schedulers/index.js";
import { TorchGenerator } from "../../src/wsd_web/static/js/torch_random.js";
import { cpuTensorOps } from "./cpu_tensor_ops.mjs";

/**
 * @typedef {object} Run
 * @property {number} steps
 * @property {number[]} [sample]  The initial sample, or
 * @property {number} [seed]  the seed of the generator that draws it (and the step noise).
 * @property {number[]} shape
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
  const { ops, live, noises, useGenerator } = cpuTensorOps();
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
    const initNoiseSigma = scheduler.initNoiseSigma;
    const noisesBefore = noises();
    /** @type {number[][]} */
    const inputs = [];
    /** @type {number[][]} */
    const samples = [];
    /** @type {Float32Array} */
    let sample;
    /** @type {TorchGenerator | null} */
    let generator = null;
    if (run.seed === undefined) {
      sample = ops.combine([[1, Float32Array.from(/** @type {number[]} */ (run.sample))]]);
    } else {
      generator = new TorchGenerator(run.seed);
      useGenerator(generator, run.shape);
      sample = ops.combine([[Math.fround(initNoiseSigma), generator.randn(run.shape)]]);
    }
    const initial = Array.from(sample);
    timesteps.forEach((t, i) => {
      const modelOutput = Float32Array.from(run.model_outputs[i]);
      const input = scheduler.scaleModelInput(sample, t);
      inputs.push(Array.from(input));
      if (input !== sample) ops.release(input);
      const next = scheduler.step(modelOutput, t, sample);
      ops.release(sample);
      sample = next;
      samples.push(Array.from(sample));
    });
    ops.release(sample);
    return {
      steps: run.steps, timesteps, init_noise_sigma: initNoiseSigma, sample: initial, inputs, samples,
      noises: noises() - noisesBefore,
      // Where the stream stands after the run: the draw that would come next.
      next_draw: generator === null ? null : Array.from(generator.randn(run.shape)),
    };
  });
  scheduler.dispose();
  if (live() !== 0) throw new Error(`${c.id}: ${live()} tensors still alive after dispose`);
  return { id: c.id, config: scheduler.config, sweep, runs };
}

const [casesPath, resultsPath] = process.argv.slice(2);
// eslint-disable-next-line security/detect-non-literal-fs-filename -- the input the test wrote, named on argv
const { cases } = /** @type {{cases: Case[]}} */ (JSON.parse(readFileSync(casesPath, "utf8")));
// JSON has no infinities; write them as Python's json does, so the test reads them back.
const json = JSON.stringify({ cases: cases.map(runCase) }, (_, v) =>
  typeof v === "number" && !Number.isFinite(v) ? `@${v}` : v);
// eslint-disable-next-line security/detect-non-literal-fs-filename -- the output file the test named on argv
writeFileSync(resultsPath, json.replace(/"@(-?Infinity|NaN)"/g, "$1"));
