import assert from "node:assert/strict";
import { test } from "node:test";

import {
  alphasCumprod, arange, combine, linspace, resolveConfig, roundHalfEven,
} from "../../src/wsd_web/static/js/schedulers/common.js";
import {
  DDIM, DPMSolverMultistep, EulerAncestralDiscrete, EulerDiscrete, LCM, PNDM, SCHEDULERS, SchedulerError,
  createScheduler,
} from "../../src/wsd_web/static/js/schedulers/index.js";
import { TorchGenerator } from "../../src/wsd_web/static/js/torch_random.js";
import { cpuTensorOps } from "./cpu_tensor_ops.mjs";

/** Stable Diffusion 1.5's scheduler_config.json. */
const SD15 = Object.freeze({
  _class_name: "PNDMScheduler",
  beta_end: 0.012,
  beta_schedule: "scaled_linear",
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
});

/** @param {number} actual @param {number} expected @param {number} [rel] */
function near(actual, expected, rel = 1e-12) {
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${actual} is not ${expected}`);
}

/**
 * @param {string} name
 * @param {Record<string, unknown>} [config]
 * @param {number} [steps]
 */
function timesteps(name, config = SD15, steps = 4) {
  const scheduler = createScheduler(name, config, cpuTensorOps().ops);
  scheduler.setTimesteps(steps);
  return scheduler.timesteps;
}

test("numpy rounding is half to even", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -1.5, 3.2, 3.7].map(roundHalfEven), [0, 2, 2, -2, 3, 4]);
});

test("numpy linspace and float arange", () => {
  assert.deepEqual(linspace(0, 5, 3), [0, 2.5, 5]);
  assert.deepEqual(linspace(0, 999, 1), [0]);
  assert.deepEqual(arange(1000, 0, -250), [1000, 750, 500, 250]);
  // ceil(1000 / (1000 / 61)) is 62: one point more than asked, as in numpy.
  assert.equal(arange(1000, 0, -1000 / 61).length, 62);
});

test("scaled_linear betas are SD's: alphas_cumprod from 1 - 0.00085 down to 0.0046601", () => {
  const ac = alphasCumprod(resolveConfig({ ...SD15 }, {}, {}), "test");
  assert.equal(ac.length, 1000);
  assert.equal(ac[0], Math.fround(1 - Math.fround(0.00085)));
  near(ac[999], 0.00466009508818388, 1e-5);
});

test("linear, cosine and trained betas", () => {
  const linear = alphasCumprod({ num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" }, "t");
  assert.equal(linear[0], Math.fround(0.9999));
  near(linear[999], 4.035830352222547e-05, 1e-5);
  const cosine = alphasCumprod({ num_train_timesteps: 1000, beta_schedule: "squaredcos_cap_v2" }, "t");
  const alphaBar = (/** @type {number} */ t) => Math.cos((t + 0.008) / 1.008 * Math.PI / 2) ** 2;
  assert.equal(cosine[0], Math.fround(1 - Math.fround(1 - alphaBar(0.001) / alphaBar(0))));
  // The last beta is capped at 0.999.
  near(cosine[999] / cosine[998], 1 - Math.fround(0.999), 1e-6);
  const trained = alphasCumprod({ num_train_timesteps: 2, trained_betas: [0.1, 0.2] }, "t");
  assert.deepEqual(Array.from(trained), [Math.fround(0.9), Math.fround(Math.fround(0.9) * Math.fround(0.8))]);
});

test("bad training schedules are refused with the key", () => {
  /** @type {Array<[Record<string, unknown>, RegExp]>} */
  const cases = [
    [{ ...SD15, beta_schedule: "cosine" }, /beta_schedule="cosine" is not supported/],
    [{ ...SD15, trained_betas: [0.1, 0.2] }, /trained_betas must be 1000 numbers/],
    [{ ...SD15, num_train_timesteps: 1.5 }, /num_train_timesteps=1.5 must be an integer/],
  ];
  for (const [config, message] of cases) {
    assert.throws(() => createScheduler("pndm", config, cpuTensorOps().ops), message);
    assert.throws(() => createScheduler("dpmpp-2m", config, cpuTensorOps().ops), message);
  }
});

test("PNDM (PLMS) repeats the second timestep: leading, trailing, linspace", () => {
  // leading: 1000 // 4 = 250 apart, + steps_offset 1
  assert.deepEqual(timesteps("pndm"), [751, 501, 501, 251, 1]);
  // trailing: round(arange(1000, 0, -250)) - 1
  assert.deepEqual(timesteps("pndm", { ...SD15, timestep_spacing: "trailing" }), [999, 749, 749, 499, 249]);
  // linspace: round(linspace(0, 999, 3)) = [0, 500 (499.5, half to even), 999]
  assert.deepEqual(timesteps("pndm", { ...SD15, timestep_spacing: "linspace" }, 3), [999, 500, 500, 0]);
  assert.deepEqual(timesteps("pndm", SD15, 1), [1]);
});

test("PNDM with the Runge-Kutta warm-up: 12 half-stepped timesteps, then PLMS", () => {
  const config = { num_train_timesteps: 1000, skip_prk_steps: false };
  assert.deepEqual(timesteps("pndm", config), [750, 625, 625, 500, 500, 375, 375, 250, 250, 125, 125, 0, 0]);
  assert.throws(() => timesteps("pndm", config, 3), /warm-up \(skip_prk_steps false\) needs at least 4 steps, got 3/);
});

test("PNDM refuses the trailing step counts where numpy yields timestep -1", () => {
  assert.throws(() => timesteps("pndm", { ...SD15, timestep_spacing: "trailing" }, 61), /gives timesteps -1, outside \[0, 1000\)/);
});

test("DPM-Solver++ spacing: linspace by default, n + 1 points with the last dropped", () => {
  // round(linspace(0, 999, 5)) reversed, without 0; SD 1.5's "leading" is PNDM's default, not DPM's.
  assert.deepEqual(timesteps("dpmpp-2m"), [999, 749, 500, 250]);
  // half to even: linspace(0, 5, 3) = [0, 2.5, 5] -> [5, 2]
  assert.deepEqual(timesteps("dpmpp-2m", { num_train_timesteps: 6 }, 2), [5, 2]);
  // leading: 1000 // 5 = 200 apart, + steps_offset
  assert.deepEqual(timesteps("dpmpp-2m", { ...SD15, timestep_spacing: "leading" }), [801, 601, 401, 201]);
  assert.deepEqual(timesteps("dpmpp-2m", { ...SD15, timestep_spacing: "trailing" }), [999, 749, 499, 249]);
  // numpy's arange quirk: 62 timesteps for 61 steps, the last -1 (its sigma is timestep 0's).
  const quirk = timesteps("dpmpp-2m", { ...SD15, timestep_spacing: "trailing" }, 61);
  assert.deepEqual([quirk.length, ...quirk.slice(-3)], [62, 32, 15, -1]);
});

test("Karras timesteps: interpolated in log sigma, rounded; truncated on squaredcos_cap_v2", () => {
  assert.deepEqual(timesteps("dpmpp-2m-karras", SD15, 5), [999, 786, 427, 59, 0]);
  assert.deepEqual(timesteps("dpmpp-2m-karras", { beta_schedule: "linear" }, 5), [999, 843, 593, 142, 0]);
  assert.deepEqual(timesteps("dpmpp-2m-karras", SD15, 1), [999]);
  assert.deepEqual(timesteps("dpmpp-2m-karras", { beta_schedule: "squaredcos_cap_v2" }, 3), [998, 997, 0]);
});

test("configs resolve as diffusers' from_config: own keys, class defaults, overrides win", () => {
  const ops = cpuTensorOps().ops;
  const dpm = createScheduler("dpmpp-2m-karras", { ...SD15, solver_order: 3, use_karras_sigmas: false }, ops);
  assert.equal(dpm.config.timestep_spacing, "linspace");
  assert.equal(dpm.config.steps_offset, 1);
  assert.equal(dpm.config.solver_order, 2);
  assert.equal(dpm.config.use_karras_sigmas, true);
  assert.equal(dpm.config.skip_prk_steps, undefined);
  // A loaded config lists the keys it only defaulted: they do not carry over.
  const loaded = { ...SD15, timestep_spacing: "leading", _use_default_values: ["timestep_spacing"] };
  assert.equal(createScheduler("dpmpp-2m", loaded, ops).config.timestep_spacing, "linspace");
  assert.equal(createScheduler("pndm", loaded, ops).config.timestep_spacing, "leading");
  assert.equal(new PNDM(loaded, ops, { timestep_spacing: "trailing" }).config.timestep_spacing, "trailing");
  // diffusers' legacy aliases
  const aliased = new DPMSolverMultistep({ algorithm_type: "deis", solver_type: "bh2" }, ops);
  assert.equal(aliased.config.algorithm_type, "dpmsolver++");
  assert.equal(aliased.config.solver_type, "midpoint");
});

test("unsupported settings are refused with the key and the supported values", () => {
  const ops = cpuTensorOps().ops;
  /** @type {Array<[Record<string, unknown>, RegExp]>} */
  const dpmCases = [
    [{ thresholding: true }, /thresholding=true is not supported \(supported: false\)/],
    [{ algorithm_type: "sde-dpmsolver++" }, /algorithm_type="sde-dpmsolver\+\+" is not supported/],
    [{ solver_order: 3 }, /solver_order=3 is not supported \(supported: 2\)/],
    [{ prediction_type: "flow_prediction" }, /prediction_type="flow_prediction"/],
    [{ use_lu_lambdas: true }, /use_lu_lambdas=true/],
    [{ lambda_min_clipped: -5.1 }, /lambda_min_clipped=-5.1/],
    [{ timestep_spacing: "uniform" }, /timestep_spacing="uniform"/],
  ];
  for (const [config, message] of dpmCases) {
    assert.throws(() => new DPMSolverMultistep(config, ops), (e) => e instanceof SchedulerError && message.test(e.message));
  }
  assert.throws(() => new PNDM({ prediction_type: "sample" }, ops), /PNDMScheduler: prediction_type="sample" is not supported/);
  assert.throws(() => timesteps("pndm", SD15, 0), /positive integer, got 0/);
});

test("an unknown scheduler name lists the valid ones", () => {
  assert.throws(
    () => createScheduler("heun", SD15, cpuTensorOps().ops),
    (e) => e instanceof SchedulerError && e.message ===
      'unknown scheduler "heun"; choose one of: dpmpp-2m, dpmpp-2m-karras, pndm, ddim, euler, euler-a, lcm',
  );
  assert.deepEqual(Object.keys(SCHEDULERS), ["dpmpp-2m", "dpmpp-2m-karras", "pndm", "ddim", "euler", "euler-a", "lcm"]);
});

/**
 * Denoise a tiny latent as the app does, with a tracked ops object whose
 * noise() draws from a seeded generator, releasing every tensor the caller
 * owns (the scaled model input included) as soon as it may. With a strength
 * below 1, start from an image noised by addNoise, as image-to-image does.
 * @param {string} name
 * @param {Record<string, unknown>} config
 * @param {number} steps
 * @param {number} [strength]
 */
function ownedLoop(name, config, steps, strength = 1) {
  const tracked = cpuTensorOps();
  const { ops } = tracked;
  const generator = new TorchGenerator(7);
  tracked.useGenerator(generator, [3]);
  const scheduler = createScheduler(name, config, ops);
  scheduler.setTimesteps(steps, { strength });
  const noise = ops.combine([[1, generator.randn([3])]]);
  let sample = strength === 1
    ? ops.combine([[scheduler.initNoiseSigma, noise]])
    : scheduler.addNoise(Float32Array.from([0.5, -1, 0.25]), noise, scheduler.timesteps[0]);
  ops.release(noise);
  /** @type {boolean[]} */
  const scaled = [];
  scheduler.timesteps.forEach((t, i) => {
    const input = scheduler.scaleModelInput(sample, t);
    scaled.push(input !== sample);
    const modelOutput = ops.combine([[1, Float32Array.from([Math.sin(i), Math.cos(i), 0.1 * i])], [1e-3, input]]);
    if (input !== sample) ops.release(input);
    const next = scheduler.step(modelOutput, t, sample);
    ops.release(modelOutput);
    ops.release(sample);
    sample = next;
  });
  const values = Array.from(sample);
  ops.release(sample);
  const held = tracked.live();
  const stepsRun = scheduler.timesteps.length;
  scheduler.dispose();
  assert.equal(tracked.live(), 0, "every tensor made by ops is released exactly once");
  return { values, held, scaled, noises: tracked.noises(), stepsRun };
}

test("no tensor leaks or is released twice, and none is used after the caller released it", () => {
  /** @type {Array<[string, Record<string, unknown>, number]>} */
  const loops = [
    ["pndm", SD15, 1], ["pndm", SD15, 2], ["pndm", SD15, 20],
    ["pndm", { prediction_type: "v_prediction" }, 6],
    ["pndm", { ...SD15, beta_schedule: "squaredcos_cap_v2", set_alpha_to_one: true }, 3],
    ["dpmpp-2m", SD15, 1], ["dpmpp-2m", SD15, 20],
    ["dpmpp-2m", { ...SD15, prediction_type: "v_prediction", solver_type: "heun", final_sigmas_type: "sigma_min" }, 16],
    ["dpmpp-2m", { ...SD15, prediction_type: "sample" }, 3],
    ["dpmpp-2m-karras", SD15, 25],
    ["ddim", SD15, 1], ["ddim", SD15, 30],
    ["ddim", { prediction_type: "sample", clip_sample_range: 0.5 }, 5],
    ["ddim", { ...SD15, prediction_type: "v_prediction", timestep_spacing: "trailing" }, 8],
    ["euler", SD15, 1], ["euler", { ...SD15, use_karras_sigmas: true }, 20],
    ["euler", { ...SD15, prediction_type: "v_prediction", timestep_spacing: "leading" }, 4],
    ["euler", { ...SD15, prediction_type: "sample", final_sigmas_type: "sigma_min" }, 4],
    ["euler-a", SD15, 1], ["euler-a", { ...SD15, prediction_type: "v_prediction" }, 20],
    ["lcm", {}, 1], ["lcm", {}, 4], ["lcm", { clip_sample: true, prediction_type: "v_prediction" }, 8],
    ["lcm", { prediction_type: "sample", original_inference_steps: 100 }, 100],
  ];
  for (const [name, config, steps] of loops) {
    const { values, held, scaled, noises } = ownedLoop(name, config, steps);
    assert.ok(values.every(Number.isFinite), `${name} ${steps} steps: ${values}`);
    // Only the multistep solvers keep tensors between steps (until dispose).
    assert.equal(held > 0, ["pndm", "dpmpp-2m", "dpmpp-2m-karras"].includes(name), `${name} holds ${held}`);
    // Only the Euler schedulers scale the model input, into a new tensor, at every step.
    assert.ok(scaled.every((s) => s === name.startsWith("euler")), `${name} scaled ${scaled}`);
    // The noise is drawn where diffusers draws it: every Euler ancestral step, every LCM step but the last.
    const draws = { "euler-a": steps, lcm: steps - 1 }[name] ?? 0;
    assert.equal(noises, draws, `${name} ${steps} steps drew ${noises} noise tensors`);
  }
});

test("setTimesteps and dispose release the held history mid-run", () => {
  const tracked = cpuTensorOps();
  const scheduler = createScheduler("pndm", { num_train_timesteps: 1000 }, tracked.ops);
  const x = Float32Array.from([1, 2]);
  scheduler.setTimesteps(5);
  for (const t of scheduler.timesteps.slice(0, 5)) tracked.ops.release(scheduler.step(x, t, x));
  assert.ok(tracked.live() > 0);
  scheduler.setTimesteps(5);
  assert.equal(tracked.live(), 0);
  tracked.ops.release(scheduler.step(x, scheduler.timesteps[0], x));
  scheduler.dispose();
  assert.equal(tracked.live(), 0);
  assert.throws(() => scheduler.step(x, 751, x), /step 1 called but setTimesteps planned 0 steps/);
});

test("steps must follow the timesteps in order", () => {
  const tracked = cpuTensorOps();
  tracked.useGenerator(new TorchGenerator(0), [1]);
  const { ops } = tracked;
  for (const name of Object.keys(SCHEDULERS)) {
    const scheduler = createScheduler(name, SD15, ops);
    scheduler.setTimesteps(2);
    const x = Float32Array.from([1]);
    assert.throws(() => scheduler.step(x, scheduler.timesteps[0] + 1, x), /step 0 must be called with timestep/);
    for (const t of scheduler.timesteps) scheduler.step(x, t, x);
    // eslint-disable-next-line security/detect-non-literal-regexp -- a number interpolated by the test itself
    assert.throws(() => scheduler.step(x, 0, x), new RegExp(`step ${scheduler.timesteps.length + 1} called but`));
  }
});

test("DPM-Solver++'s first step is a DDIM step, and with a final sigma of 0 its last returns x0", () => {
  const { ops } = cpuTensorOps();
  const ac = alphasCumprod(resolveConfig({ ...SD15 }, {}, {}), "t");
  const scheduler = new DPMSolverMultistep(SD15, ops);
  scheduler.setTimesteps(2); // [999, 500]
  const [t0, t1] = scheduler.timesteps;
  const x = new Float32Array([0.3]);
  const eps = new Float32Array([-0.7]);
  const x0 = (0.3 - Math.sqrt(1 - ac[t0]) * -0.7) / Math.sqrt(ac[t0]);
  const epsRecovered = (0.3 - Math.sqrt(ac[t0]) * x0) / Math.sqrt(1 - ac[t0]);
  const ddim = Math.sqrt(ac[t1]) * x0 + Math.sqrt(1 - ac[t1]) * epsRecovered;
  const next = scheduler.step(eps, t0, x);
  near(next[0], ddim, 1e-6);
  const last = scheduler.step(eps, t1, next);
  near(last[0], (next[0] - Math.sqrt(1 - ac[t1]) * -0.7) / Math.sqrt(ac[t1]), 1e-6);
});

test("heun over a zero-length last step keeps the sample (diffusers: NaN)", () => {
  const { ops } = cpuTensorOps();
  // Trailing's 61 steps end on timestep -1, whose sigma is timestep 0's: sigma_min again.
  const config = {
    ...SD15, timestep_spacing: "trailing", final_sigmas_type: "sigma_min", solver_type: "heun", lower_order_final: false,
  };
  const scheduler = createScheduler("dpmpp-2m", config, ops);
  scheduler.setTimesteps(61);
  /** @type {Float32Array} */
  let x = Float32Array.from([0.25, -2]);
  let before = x;
  for (const t of scheduler.timesteps) {
    before = x;
    x = scheduler.step(Float32Array.from([0.5, -0.5]), t, x);
  }
  assert.deepEqual(Array.from(x), Array.from(before));
  assert.ok(x.every(Number.isFinite));
});

test("DDIM: leading by default, every step T // n back, eta 0 only", () => {
  assert.deepEqual(timesteps("ddim"), [751, 501, 251, 1]);
  assert.deepEqual(timesteps("ddim", { ...SD15, timestep_spacing: "linspace" }, 3), [999, 500, 0]);
  assert.throws(() => timesteps("ddim", { ...SD15, timestep_spacing: "trailing" }, 61), /gives timesteps -1, outside \[0, 1000\)/);
  assert.throws(() => timesteps("ddim", { num_train_timesteps: 10, clip_sample: false }, 11), /11 inference steps cannot be more than num_train_timesteps \(10\)/);
  const { ops } = cpuTensorOps();
  const scheduler = new DDIM(SD15, ops);
  scheduler.setTimesteps(2);
  const x = Float32Array.from([1]);
  assert.throws(() => scheduler.step(x, scheduler.timesteps[0], x, 0.5), /DDIMScheduler: eta=0.5 is not supported \(only deterministic DDIM, eta 0\)/);
  // With a final alpha of 1 (set_alpha_to_one) the last step returns x0, clipped.
  const clipping = new DDIM({ clip_sample_range: 0.5 }, ops);
  clipping.setTimesteps(1);
  assert.deepEqual(Array.from(clipping.step(Float32Array.from([0, 0]), 0, Float32Array.from([-3, 0.25]))), [-0.5, Math.fround(0.25 / Math.sqrt(Math.fround(0.9999)))]);
});

test("Euler: float32 timesteps, Karras sigmas on request, init_noise_sigma by spacing", () => {
  // linspace(0, 999, 4) in float32, descending; one step is timestep 0, as in diffusers.
  assert.deepEqual(timesteps("euler"), [999, 666, 333, 0]);
  assert.deepEqual(timesteps("euler", SD15, 3), [999, 499.5, 0]);
  assert.deepEqual(timesteps("euler", SD15, 7), [999, 832.5, 666, 499.5, 333, 166.5, 0]);
  assert.deepEqual(timesteps("euler", SD15, 1), [0]);
  const karras = timesteps("euler", { ...SD15, use_karras_sigmas: true }, 4);
  assert.equal(karras[0], 999);
  assert.ok(!Number.isInteger(karras[1]), `fractional Karras timesteps: ${karras}`);
  // sigma_min / sigma_max in the config bound the Karras sigmas instead of the spaced ones.
  const bounded = timesteps("euler", { ...SD15, use_karras_sigmas: true, sigma_min: 0.1, sigma_max: 10 }, 4);
  assert.ok(bounded[0] < 999 && bounded[3] > 0, `${bounded}`);
  const { ops } = cpuTensorOps();
  const linspace = new EulerDiscrete(SD15, ops);
  const leading = new EulerDiscrete({ ...SD15, timestep_spacing: "leading" }, ops);
  const trailing = new EulerDiscrete({ ...SD15, timestep_spacing: "trailing" }, ops);
  // Before setTimesteps: the training sigmas' largest.
  assert.equal(linspace.initNoiseSigma, trailing.initNoiseSigma);
  for (const s of [linspace, leading, trailing]) s.setTimesteps(10);
  assert.equal(trailing.initNoiseSigma, linspace.initNoiseSigma);
  // diffusers: the largest sigma (timestep 999's) with linspace; with leading
  // (largest timestep 901, sigma 8.390687) sqrt(sigma^2 + 1).
  near(linspace.initNoiseSigma, 14.614646911621094, 1e-6);
  near(leading.initNoiseSigma, 8.450066566467285, 1e-6);
});

test("Euler ancestral and LCM draw their noise from ops.noise() and release it", () => {
  const tracked = cpuTensorOps();
  tracked.useGenerator(new TorchGenerator(1), [2]);
  const euler = new EulerAncestralDiscrete(SD15, tracked.ops);
  euler.setTimesteps(3);
  const x = Float32Array.from([0.1, 0.2]);
  for (const t of euler.timesteps) tracked.ops.release(euler.step(x, t, x));
  assert.equal(tracked.noises(), 3);
  assert.equal(tracked.live(), 0);
  const lcm = new LCM({}, tracked.ops);
  lcm.setTimesteps(4);
  assert.deepEqual(lcm.timesteps, [999, 759, 499, 259]);
  for (const t of lcm.timesteps) tracked.ops.release(lcm.step(x, t, x));
  assert.equal(tracked.noises(), 3 + 3);
  assert.equal(tracked.live(), 0);
});

test("LCM picks its steps from the original_inference_steps schedule, as many as it has at most", () => {
  assert.deepEqual(timesteps("lcm", {}, 1), [999]);
  assert.deepEqual(timesteps("lcm", { original_inference_steps: 4 }, 3), [999, 749, 499]);
  assert.equal(timesteps("lcm", {}, 50).at(-1), 19);
  assert.throws(() => timesteps("lcm", {}, 51), /51 inference steps cannot be more than original_inference_steps \(50\)/);
  assert.throws(() => timesteps("lcm", { original_inference_steps: 1001 }, 4), /original_inference_steps=1001 must be an integer in 1\.\.num_train_timesteps \(1000\)/);
  assert.throws(() => timesteps("lcm", { original_inference_steps: 0 }, 4), /original_inference_steps=0/);
});

test("the newer schedulers refuse what they do not implement, naming the key", () => {
  const { ops } = cpuTensorOps();
  /** @type {Array<[() => unknown, RegExp]>} */
  const cases = [
    [() => new DDIM({ thresholding: true }, ops), /DDIMScheduler: thresholding=true is not supported/],
    [() => new DDIM({ rescale_betas_zero_snr: true }, ops), /DDIMScheduler: rescale_betas_zero_snr=true is not supported \(supported: false\)/],
    [() => new DDIM({ prediction_type: "flow" }, ops), /DDIMScheduler: prediction_type="flow"/],
    [() => new EulerDiscrete({ interpolation_type: "log_linear" }, ops), /EulerDiscreteScheduler: interpolation_type="log_linear"/],
    [() => new EulerDiscrete({ use_exponential_sigmas: true }, ops), /use_exponential_sigmas=true/],
    [() => new EulerDiscrete({ timestep_type: "continuous" }, ops), /timestep_type="continuous"/],
    [() => new EulerDiscrete({ rescale_betas_zero_snr: true }, ops), /EulerDiscreteScheduler: rescale_betas_zero_snr=true/],
    [() => new EulerAncestralDiscrete({ prediction_type: "sample" }, ops), /EulerAncestralDiscreteScheduler: prediction_type="sample" is not supported/],
    [() => new EulerAncestralDiscrete({ rescale_betas_zero_snr: true }, ops), /rescale_betas_zero_snr=true/],
    [() => new LCM({ thresholding: true }, ops), /LCMScheduler: thresholding=true/],
    [() => new LCM({ rescale_betas_zero_snr: true }, ops), /LCMScheduler: rescale_betas_zero_snr=true/],
  ];
  for (const [make, message] of cases) {
    assert.throws(make, (e) => e instanceof SchedulerError && message.test(e.message), String(message));
  }
  // clip_sample needs TensorOps.clamp: DDIM's default config clips.
  const noClamp = { maxTerms: ops.maxTerms, combine: ops.combine, release: ops.release, noise: ops.noise };
  assert.throws(() => createScheduler("ddim", {}, noClamp), /DDIMScheduler: clip_sample=true needs a tensor backend with clamp\(\)/);
  assert.throws(() => createScheduler("lcm", { clip_sample: true }, noClamp), /LCMScheduler: clip_sample=true needs/);
  assert.equal(createScheduler("ddim", SD15, noClamp).config.clip_sample, false);
});

test("combine folds more than four terms into released partial sums", () => {
  const tracked = cpuTensorOps();
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => Float32Array.from([v]));
  const out = combine(tracked.ops, xs.map((x, i) => /** @type {[number, Float32Array]} */ ([i % 2 ? -1 : 1, x])));
  assert.deepEqual(Array.from(out), [5]);
  assert.equal(tracked.made(), 3);
  assert.equal(tracked.live(), 1);
});

test("combine folds by the backend's maxTerms, which must allow a fold", () => {
  const tracked = cpuTensorOps({ maxTerms: 2 });
  const xs = [1, 2, 3, 4, 5].map((v) => /** @type {[number, Float32Array]} */ ([1, Float32Array.from([v])]));
  assert.deepEqual(Array.from(combine(tracked.ops, xs)), [15]);
  assert.equal(tracked.made(), 4);
  assert.equal(tracked.live(), 1);
  for (const maxTerms of [1, 2.5, undefined]) {
    const ops = { ...cpuTensorOps().ops, maxTerms: /** @type {number} */ (maxTerms) };
    assert.throws(
      () => combine(ops, xs),
      (e) => e instanceof SchedulerError && e.message.startsWith(`TensorOps.maxTerms=${maxTerms} must be an integer >= 2`),
    );
  }
});

/**
 * @param {string} name
 * @param {number} steps
 * @param {number} strength
 * @param {Record<string, unknown>} [config]
 */
function cut(name, steps, strength, config = SD15) {
  const scheduler = createScheduler(name, config, cpuTensorOps().ops);
  scheduler.setTimesteps(steps, { strength });
  return scheduler.timesteps;
}

test("a strength keeps the last int(steps * strength) timesteps, as diffusers' img2img get_timesteps", () => {
  const ddim = timesteps("ddim", SD15, 10);
  assert.deepEqual(cut("ddim", 10, 1), ddim);
  assert.deepEqual(cut("ddim", 10, 0.5), [401, 301, 201, 101, 1]);
  // int(100 * 0.29) is 28 (0.29 * 100 = 28.999999999999996 in floating point).
  assert.equal(cut("euler", 100, 0.29).length, 28);
  assert.deepEqual(cut("lcm", 4, 0.75, {}), [759, 499, 259]);
  // PNDM plans one timestep more (PLMS repeats one), and keeps one more.
  assert.deepEqual(cut("pndm", 4, 0.5), [501, 251, 1]);
  assert.deepEqual(cut("pndm", 4, 0.1), [1]);
  // With the Runge-Kutta warm-up, the first 12 steps that run are its evaluations.
  assert.deepEqual(cut("pndm", 4, 0.5, { num_train_timesteps: 1000 }), [625, 500, 500, 375, 375, 250, 250, 125, 125, 0, 0]);
});

test("a strength outside (0, 1] is refused, naming it, and the plan stays as it was", () => {
  for (const name of Object.keys(SCHEDULERS)) {
    const scheduler = createScheduler(name, SD15, cpuTensorOps().ops);
    scheduler.setTimesteps(4);
    const planned = [...scheduler.timesteps];
    for (const [strength, shown] of [[0, "0"], [-0.5, "-0.5"], [1.5, "1.5"], [NaN, "NaN"], ["0.5", '"0.5"']]) {
      assert.throws(
        () => scheduler.setTimesteps(4, { strength: /** @type {number} */ (strength) }),
        (e) => e instanceof SchedulerError && e.message.includes(`strength=${shown} is not a number in (0, 1]`),
        `${name} ${shown}`,
      );
    }
    assert.deepEqual(scheduler.timesteps, planned);
  }
});

test("a strength that leaves no step is refused (diffusers' pipeline would noise an empty batch)", () => {
  for (const name of Object.keys(SCHEDULERS).filter((n) => n !== "pndm")) {
    assert.throws(
      () => cut(name, 10, 0.05),
      (e) => e instanceof SchedulerError &&
        e.message.endsWith("strength=0.05 with 10 steps leaves no step to run (int(10 * 0.05) = 0); use a larger strength or more steps"),
      name,
    );
    assert.equal(cut(name, 20, 0.05).length, 1);
  }
});

test("addNoise: sqrt(a_t) x0 + sqrt(1 - a_t) noise at any training timestep for DDIM, PNDM and LCM", () => {
  const ac = alphasCumprod(resolveConfig({ ...SD15 }, {}, {}), "t");
  const x0 = Float32Array.from([0.5, -1]);
  const noise = Float32Array.from([2, 0.25]);
  for (const name of ["ddim", "pndm", "lcm"]) {
    const scheduler = createScheduler(name, SD15, cpuTensorOps().ops);
    const [a, b] = [Math.fround(Math.sqrt(ac[500])), Math.fround(Math.sqrt(Math.fround(1 - ac[500])))];
    assert.deepEqual(Array.from(scheduler.addNoise(x0, noise, 500)), [a * 0.5 + b * 2, -a + b * 0.25].map(Math.fround));
    for (const t of [-1, 1000, 2.5]) {
      assert.throws(
        () => scheduler.addNoise(x0, noise, t),
        (e) => e instanceof SchedulerError && e.message.includes(`addNoise at timestep ${t}: not a training timestep`),
      );
    }
  }
});

test("addNoise of the sigma schedulers noises to the next step's sigma, and takes only its timestep", () => {
  const tracked = cpuTensorOps();
  tracked.useGenerator(new TorchGenerator(3), [1]);
  const [zero, one] = [Float32Array.from([0]), Float32Array.from([1])];
  for (const name of ["euler", "euler-a", "dpmpp-2m", "dpmpp-2m-karras"]) {
    const scheduler = createScheduler(name, SD15, tracked.ops);
    assert.throws(() => scheduler.addNoise(zero, one, 999), /no step is left to run; call setTimesteps first/);
    scheduler.setTimesteps(10, { strength: 0.5 });
    const [first, second] = scheduler.timesteps;
    const before = scheduler.addNoise(zero, one, first)[0];
    assert.throws(
      () => scheduler.addNoise(zero, one, second),
      (e) => e instanceof SchedulerError && e.message.endsWith(`with the next step's timestep ${first}, got ${second}`),
    );
    tracked.ops.release(scheduler.step(one, first, one));
    // After a step (inpainting): the next step's noise level, a lower one.
    const after = scheduler.addNoise(zero, one, second)[0];
    assert.ok(after > 0 && after < before, `${name}: ${after} after ${before}`);
  }
});

test("image-to-image runs own their tensors as text-to-image runs do", () => {
  for (const name of Object.keys(SCHEDULERS)) {
    for (const [steps, strength] of [[10, 0.5], [7, 0.3], [4, 0.8]]) {
      const { values, noises, stepsRun } = ownedLoop(name, name === "lcm" ? {} : SD15, steps, strength);
      assert.ok(values.every(Number.isFinite), `${name} ${steps} steps at ${strength}: ${values}`);
      assert.equal(stepsRun, Math.trunc(steps * strength) + (name === "pndm" ? 1 : 0));
      assert.equal(noises, { "euler-a": stepsRun, lcm: stepsRun - 1 }[name] ?? 0, `${name} drew ${noises}`);
    }
  }
});
