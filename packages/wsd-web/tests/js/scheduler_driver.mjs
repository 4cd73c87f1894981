// Runs the JS schedulers on fixtures that test_scheduler_parity.py made with
// diffusers, and writes what they produce for the test to compare:
//   node scheduler_driver.mjs CASES.json RESULTS.json
// CASES.json: {cases: [{id, scheduler, config, sweep: [steps...],
//   runs: [{steps, sample | seed, shape, model_outputs: [[...] per step]}],
//   strengths: [...], strength_sweep: [steps...],
//   img2img: [{steps, strength, seed, shape, original, model_outputs}]}]}
// RESULTS.json: {cases: [{id, config, sweep: {steps: timesteps, or null if refused},
//   runs: [{steps, timesteps, init_noise_sigma, sample, inputs: [[...] model input per step],
//   samples: [[...] after each step], noises, next_draw}],
//   strength_sweep: {steps: [timesteps or null, per strength]},
//   img2img: [{steps, strength, timesteps, noised: [[...] addNoise before each step],
//   inputs, samples, next_draw}]}]}
// A run with a seed starts as a diffusers pipeline does: one generator,
// torch.Generator().manual_seed(seed), whose first randn(shape) is the
// initial noise (times initNoiseSigma) and whose later draws are the noise the
// scheduler asks for in its steps (ops.noise()).
// An image-to-image run starts as diffusers' img2img pipeline does: the
// timesteps cut for its strength, the original noised by addNoise with the
// generator's first draw, which then draws the step noise; after each step
// the original is noised again to the next step's level, as inpainting does.
// Tensors are float32 on the CPU; the loop releases each sample (and each
// scaled model input) once used, as the app does, and checks that nothing is
// left alive at the end.

import { readFileSync, writeFileSync } from "node:fs";

import { SchedulerError, createScheduler } from "../../src/wsd_web/static/js/schedulers/index.js";
import { TorchGenerator } from "../../src/wsd_web/static/js/torch_random.js";
import { cpuTensorOps } from "./cpu_tensor_ops.mjs";

/** @template T @typedef {import("../../src/wsd_web/static/js/schedulers/index.js").Scheduler<T>} Scheduler */
/** @template T @typedef {import("../../src/wsd_web/static/js/schedulers/common.js").TensorOps<T>} TensorOps */

/**
 * @typedef {object} Run
 * @property {number} steps
 * @property {number[]} [sample]  The initial sample, or
 * @property {number} [seed]  the seed of the generator that draws it (and the step noise).
 * @property {number[]} shape
 * @property {number[][]} model_outputs
 */

/**
 * @typedef {object} Img2imgRun
 * @property {number} steps
 * @property {number} strength
 * @property {number} seed  Of the generator that draws the noise addNoise adds (and the step noise).
 * @property {number[]} shape
 * @property {number[]} original  The clean latents.
 * @property {number[][]} model_outputs
 */

/**
 * @typedef {object} Case
 * @property {string} id
 * @property {string} scheduler
 * @property {Record<string, unknown>} config
 * @property {number[]} sweep
 * @property {Run[]} runs
 * @property {number[]} strengths
 * @property {number[]} strength_sweep  Step counts at which every strength is planned.
 * @property {Img2imgRun[]} img2img
 */

/**
 * The denoising loop as the app runs it, from `sample` (released, as every
 * sample once used, and every scaled model input): what the model saw and
 * the sample after each step.
 * @param {Scheduler<Float32Array>} scheduler
 * @param {TensorOps<Float32Array>} ops
 * @param {Float32Array} sample
 * @param {number[][]} modelOutputs
 * @param {(i: number) => void} [afterStep]
 */
function denoise(scheduler, ops, sample, modelOutputs, afterStep = () => {}) {
  /** @type {number[][]} */
  const inputs = [];
  /** @type {number[][]} */
  const samples = [];
  [...scheduler.timesteps].forEach((t, i) => {
    const modelOutput = Float32Array.from(modelOutputs[i]);
    const input = scheduler.scaleModelInput(sample, t);
    inputs.push(Array.from(input));
    if (input !== sample) ops.release(input);
    const next = scheduler.step(modelOutput, t, sample);
    ops.release(sample);
    sample = next;
    samples.push(Array.from(sample));
    afterStep(i);
  });
  ops.release(sample);
  return { inputs, samples };
}

/**
 * The timesteps for each strength, or null where the scheduler refuses it.
 * @param {Scheduler<Float32Array>} scheduler
 * @param {number} steps
 * @param {number[]} strengths
 */
function strengthSweep(scheduler, steps, strengths) {
  return strengths.map((strength) => {
    try {
      scheduler.setTimesteps(steps, { strength });
      return [...scheduler.timesteps];
    } catch (e) {
      if (!(e instanceof SchedulerError)) throw e;
      return null;
    }
  });
}

/**
 * @param {Scheduler<Float32Array>} scheduler
 * @param {ReturnType<typeof cpuTensorOps>} tracked
 * @param {Img2imgRun} run
 */
function img2imgRun(scheduler, { ops, useGenerator }, run) {
  scheduler.setTimesteps(run.steps, { strength: run.strength });
  const timesteps = [...scheduler.timesteps];
  const generator = new TorchGenerator(run.seed);
  useGenerator(generator, run.shape);
  const original = ops.combine([[1, Float32Array.from(run.original)]]);
  const noise = ops.combine([[1, generator.randn(run.shape)]]);
  const first = scheduler.addNoise(original, noise, timesteps[0]);
  const noised = [Array.from(first)];
  const { inputs, samples } = denoise(scheduler, ops, first, run.model_outputs, (i) => {
    if (i + 1 === timesteps.length) return;
    const again = scheduler.addNoise(original, noise, timesteps[i + 1]);
    noised.push(Array.from(again));
    ops.release(again);
  });
  ops.release(original);
  ops.release(noise);
  return {
    steps: run.steps, strength: run.strength, timesteps, noised, inputs, samples,
    next_draw: Array.from(generator.randn(run.shape)),
  };
}

/**
 * @param {Case} c
 */
function runCase(c) {
  const tracked = cpuTensorOps();
  const { ops, live, noises, useGenerator } = tracked;
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
    const { inputs, samples } = denoise(scheduler, ops, sample, run.model_outputs);
    return {
      steps: run.steps, timesteps, init_noise_sigma: initNoiseSigma, sample: initial, inputs, samples,
      noises: noises() - noisesBefore,
      // Where the stream stands after the run: the draw that would come next.
      next_draw: generator === null ? null : Array.from(generator.randn(run.shape)),
    };
  });
  /** @type {Record<string, Array<number[] | null>>} */
  const strengths = {};
  for (const steps of c.strength_sweep) strengths[steps] = strengthSweep(scheduler, steps, c.strengths);
  const img2img = c.img2img.map((run) => img2imgRun(scheduler, tracked, run));
  scheduler.dispose();
  if (live() !== 0) throw new Error(`${c.id}: ${live()} tensors still alive after dispose`);
  return { id: c.id, config: scheduler.config, sweep, runs, strength_sweep: strengths, img2img };
}

const [casesPath, resultsPath] = process.argv.slice(2);
// eslint-disable-next-line security/detect-non-literal-fs-filename -- the input the test wrote, named on argv
const { cases } = /** @type {{cases: Case[]}} */ (JSON.parse(readFileSync(casesPath, "utf8")));
// JSON has no infinities; write them as Python's json does, so the test reads them back.
const json = JSON.stringify({ cases: cases.map(runCase) }, (_, v) =>
  typeof v === "number" && !Number.isFinite(v) ? `@${v}` : v);
// eslint-disable-next-line security/detect-non-literal-fs-filename -- the output file the test named on argv
writeFileSync(resultsPath, json.replace(/"@(-?Infinity|NaN)"/g, "$1"));
