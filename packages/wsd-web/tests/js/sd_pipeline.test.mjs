import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CancelledError, PIPELINES, SD15Pipeline, SDXLPipeline, availableSchedulers, defaultSchedulerName, pipelineClass, xlTimeIds,
} from "../../src/wsd_web/static/js/sd_pipeline.js";
import { fakeModel } from "./fake_model.mjs";
import { manifest, xlManifest } from "./manifest_fixtures.mjs";

test("sdxl time ids: original size, crop top-left, target size, defaulting to the image", () => {
  const image = { height: 1024, width: 768 };
  assert.deepEqual(xlTimeIds({}, image), [1024, 768, 0, 0, 1024, 768]);
  assert.deepEqual(
    xlTimeIds({ originalSize: [512, 640], cropsCoordsTopLeft: [16, 8], targetSize: [1024, 1024] }, image),
    [512, 640, 16, 8, 1024, 1024],
  );
  assert.throws(() => xlTimeIds({ originalSize: /** @type {any} */ ([512]) }, image), /must be pairs of non-negative numbers/);
  assert.throws(() => xlTimeIds({ cropsCoordsTopLeft: [-1, 0] }, image), /non-negative/);
});

test("the pooled token follows transformers' rule for the config", () => {
  const ids = Int32Array.from([1017, 5, 9, 1018, 0, 0, 0]);
  const model = /** @type {any} */ ({ manifest: xlManifest() });
  const argmax = new SDXLPipeline(model, { encode: () => ids }, { encode: () => ids });
  assert.deepEqual(Array.from(argmax.pooledMask(ids)), [0, 0, 0, 1, 0, 0, 0]);
  // eos rule: the first EOS, even when a larger id comes earlier.
  const eosModel = /** @type {any} */ ({ manifest: xlManifest() });
  eosModel.manifest.conditioning.pooled_token = "eos";
  eosModel.manifest.tokenizer_2.eos_token_id = 9;
  const eos = new SDXLPipeline(eosModel, { encode: () => ids }, { encode: () => ids });
  assert.deepEqual(Array.from(eos.pooledMask(ids)), [0, 0, 1, 0, 0, 0, 0]);
  assert.throws(() => eos.pooledMask(Int32Array.from([1, 2])), /no EOS \(9\) to pool/);
  assert.equal(argmax.defaultNegativePrompt, null);
});

test("the default scheduler is the one the model's config names", () => {
  assert.equal(defaultSchedulerName({ class_name: "PNDMScheduler", config: {} }), "pndm");
  assert.equal(defaultSchedulerName({ class_name: "DPMSolverMultistepScheduler", config: {} }), "dpmpp-2m");
  assert.equal(
    defaultSchedulerName({ class_name: "DPMSolverMultistepScheduler", config: { use_karras_sigmas: true } }),
    "dpmpp-2m-karras",
  );
  assert.equal(defaultSchedulerName({ class_name: "DDIMScheduler", config: {} }), "ddim");
  assert.equal(defaultSchedulerName({ class_name: "SomethingElse", config: {} }), "dpmpp-2m");
});

test("a cancelled generation is its own error type", () => {
  const e = new CancelledError();
  assert.equal(e.name, "CancelledError");
  assert.match(e.message, /cancelled/);
});

test("sdxl time ids are as wide as the build's UNet takes them", () => {
  const model = /** @type {any} */ ({ manifest: xlManifest() });
  const pipeline = new SDXLPipeline(model, { encode: () => new Int32Array() }, { encode: () => new Int32Array() });
  assert.deepEqual(Array.from(pipeline.batchTimeIds({})), [1024, 768, 0, 0, 1024, 768, 1024, 768, 0, 0, 1024, 768]);
  model.manifest.conditioning.time_ids_dim = 5;
  assert.throws(() => pipeline.batchTimeIds({}), /UNet takes 5 time ids, diffusers' SDXL makes 6: rebuild/);
});

test("the registry gives each kind's text-to-image and image-to-image pipelines", () => {
  assert.equal(pipelineClass("sd15"), SD15Pipeline);
  assert.equal(pipelineClass("sd15", "image-to-image").encodesImage, true);
  assert.equal(pipelineClass("sdxl", "image-to-image").optionGroups.at(-1), "image");
  assert.equal(SD15Pipeline.encodesImage, false);
  assert.equal(pipelineClass("sdxl", "text-to-image"), SDXLPipeline);
  assert.deepEqual(Object.keys(PIPELINES), ["sd15", "sdxl"]);
});

test("a kind or task without a pipeline names it and what the app runs", () => {
  const runs = /it runs sd15 text-to-image, sd15 image-to-image, sd15 inpainting, sdxl text-to-image, sdxl image-to-image and sdxl inpainting$/;
  assert.throws(() => pipelineClass("sd3"), /no text-to-image pipeline for sd3 builds/);
  assert.throws(() => pipelineClass("sd3"), runs);
  assert.throws(() => pipelineClass("sd15", "outpainting"), /no outpainting pipeline for sd15 builds/);
  assert.throws(() => pipelineClass("constructor"), runs);
});

test("each pipeline says what it needs of the manifest and which option groups it takes", () => {
  assert.deepEqual(pipelineClass("sd15").tokenizers, ["tokenizer"]);
  assert.deepEqual(pipelineClass("sdxl").tokenizers, ["tokenizer", "tokenizer_2"]);
  assert.deepEqual(pipelineClass("sd15").manifestFields, []);
  assert.deepEqual(pipelineClass("sdxl").manifestFields, ["tokenizer_2", "conditioning"]);
  assert.deepEqual(pipelineClass("sd15").optionGroups, []);
  assert.deepEqual(pipelineClass("sdxl").optionGroups, ["micro-conditioning"]);
});

test("the schedulers offered are those that accept the model's config", () => {
  const epsilon = { num_train_timesteps: 1000, beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 };
  const names = availableSchedulers({ config: epsilon, max_terms: 4 });
  assert.ok(names.includes("dpmpp-2m") && names.includes("pndm") && names.includes("euler"), names.join());
  const sample = availableSchedulers({ config: { ...epsilon, prediction_type: "sample" }, max_terms: 4 });
  assert.ok(sample.length < names.length, sample.join());
});

/**
 * An SD 1.5 pipeline over a fake model with a tiny latent and Euler's config.
 * @param {object} [overrides]  Manifest fields to change.
 */
function fakePipeline(overrides = {}) {
  const config = { num_train_timesteps: 1000, beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 };
  const fake = fakeModel(manifest({
    latent: { shape: [1, 4, 2, 2], scaling_factor: 0.18215, vae_scale_factor: 8 },
    scheduler: { class_name: "EulerDiscreteScheduler", config, max_terms: 4 },
    ...overrides,
  }));
  return { ...fake, pipeline: new SD15Pipeline(fake.model, { encode: () => new Int32Array(3) }, () => 0) };
}

/**
 * The compiled functions called, without the fake model's weight events ("+name", "-name").
 * @param {string[]} calls
 */
function functionCalls(calls) {
  return calls.filter((c) => !c.startsWith("+") && !c.startsWith("-"));
}

test("a generation encodes the prompts, denoises step by step, decodes, and releases every tensor", async () => {
  const { pipeline, live, calls } = fakePipeline();
  const result = await pipeline.generate({ prompt: "a cat", steps: 3, returnLatents: true });
  assert.equal(live.size, 0);
  assert.equal(result.scheduler, "euler");
  assert.equal(result.timings.unetStepMs.length, 3);
  assert.equal(result.latents?.length, 16);
  const functions = functionCalls(calls);
  assert.deepEqual(functions.slice(0, 3), ["text_encoder", "text_encoder", "cfg_embeddings"]);
  assert.deepEqual(functions.filter((c) => c === "unet").length, 3);
  assert.deepEqual(functions.slice(-2), ["vae_decode", "image_to_rgba"]);
  assert.equal(result.vaeTiles, 0);
  assert.deepEqual(Object.keys(result.peakBytes), ["textEncoder", "denoise", "decode"]);
});

test("the text encoders' weights are held for encoding only and the decoder's for decoding only", async () => {
  const { pipeline, calls } = fakePipeline();
  await pipeline.generate({ prompt: "a cat", steps: 2, offload: true });
  assert.equal(pipeline.model.weights.offload, true);
  const held = (/** @type {string} */ name) => [calls.indexOf(`+${name}`), calls.indexOf(`-${name}`)];
  const [textFrom, textTo] = held("text_encoder");
  assert.ok(textFrom === 0 && calls.lastIndexOf("text_encoder") < textTo && textTo < calls.indexOf("unet"));
  const [vaeFrom, vaeTo] = held("vae_decode");
  assert.ok(calls.lastIndexOf("unet") < vaeFrom && vaeFrom < calls.indexOf("vae_decode") && vaeTo === calls.length - 1);
  await pipeline.generate({ prompt: "a cat", steps: 1, offload: false });
  assert.equal(pipeline.model.weights.offload, false);
});

test("vaeTiling on decodes in the build's tiles, one tile function call each, and releases every tensor", async () => {
  const tiling = { function: "vae_decode_tile", tile: [4, 4], overlap: [1, 1] };
  const { pipeline, live, calls } = fakePipeline({
    latent: { shape: [1, 4, 8, 8], scaling_factor: 0.18215, vae_scale_factor: 8 }, vae_tiling: tiling,
  });
  const tiled = await pipeline.generate({ prompt: "a cat", steps: 1, vaeTiling: "on" });
  assert.equal(tiled.vaeTiles, 9);
  assert.equal(live.size, 0);
  assert.equal(calls.filter((c) => c === "vae_decode_tile").length, 9);
  assert.ok(!functionCalls(calls).includes("vae_decode"));
  for (const mode of /** @type {const} */ (["off", "auto"])) {
    calls.length = 0;
    const whole = await pipeline.generate({ prompt: "a cat", steps: 1, vaeTiling: mode });
    assert.equal(whole.vaeTiles, 0);
    assert.deepEqual(functionCalls(calls).slice(-2), ["vae_decode", "image_to_rgba"]);
  }
});

test("image to image with vaeTiling on encodes the image in the build's tiles too; off encodes it whole", async () => {
  const config = { num_train_timesteps: 1000, beta_schedule: "scaled_linear", beta_start: 0.00085, beta_end: 0.012 };
  const tiling = { function: "vae_decode_tile", encode_function: "vae_encode_tile", tile: [4, 4], overlap: [1, 1] };
  const { model, live, calls } = fakeModel(manifest({
    latent: { shape: [1, 4, 8, 8], scaling_factor: 0.18215, vae_scale_factor: 8 },
    scheduler: { class_name: "EulerDiscreteScheduler", config, max_terms: 4 },
    vae_tiling: tiling,
  }));
  const ImageToImage = pipelineClass("sd15", "image-to-image");
  const pipeline = new ImageToImage(model, { encode: () => new Int32Array(3) }, () => 0);
  const image = { rgba: new Uint8ClampedArray(64 * 64 * 4), width: 64, height: 64 };
  const tiled = await pipeline.generate({ prompt: "a cat", steps: 2, image, vaeTiling: "on" });
  assert.deepEqual([tiled.vaeEncodeTiles, tiled.vaeTiles], [9, 9]);
  assert.equal(live.size, 0);
  const functions = functionCalls(calls);
  assert.equal(functions.filter((c) => c === "vae_encode_tile").length, 9);
  assert.ok(!functions.includes("vae_encode"));
  // The tiles run with the encoder's weights on the GPU, before the denoising loop.
  const [held, released] = [calls.indexOf("+vae_encode"), calls.indexOf("-vae_encode")];
  assert.ok(held < calls.indexOf("vae_encode_tile") && calls.lastIndexOf("vae_encode_tile") < released);
  assert.ok(released < calls.indexOf("unet"));
  calls.length = 0;
  const whole = await pipeline.generate({ prompt: "a cat", steps: 2, image, vaeTiling: "off" });
  assert.deepEqual([whole.vaeEncodeTiles, whole.vaeTiles], [0, 0]);
  assert.deepEqual(functionCalls(calls).filter((c) => c.startsWith("vae_")), ["vae_encode", "vae_decode"]);
  assert.equal(live.size, 0);
});

test("vaeTiling on without a tiling build, or a mode other than auto, on or off, fails before the steps", async () => {
  const { pipeline, live, calls } = fakePipeline();
  await assert.rejects(pipeline.generate({ prompt: "a cat", steps: 1, vaeTiling: "on" }), /this build cannot decode in tiles/);
  const bad = /** @type {any} */ ("tiles");
  await assert.rejects(pipeline.generate({ prompt: "a cat", steps: 1, vaeTiling: bad }), { message: 'VAE tiling "tiles": choose auto, on or off' });
  assert.ok(!calls.includes("unet"));
  assert.equal(live.size, 0);
});

test("a cancelled generation stops between steps and releases every tensor", async () => {
  const { pipeline, live, calls } = fakePipeline();
  const controller = new AbortController();
  /** @type {number[]} */
  const steps = [];
  const onStep = (/** @type {{step: number}} */ p) => {
    steps.push(p.step);
    controller.abort();
  };
  const run = pipeline.generate({ prompt: "a cat", steps: 5, signal: controller.signal }, { onStep });
  await assert.rejects(run, CancelledError);
  assert.equal(live.size, 0);
  // Step 1 is reported once step 2 is recorded (the loop runs a step ahead): no third.
  assert.deepEqual(steps, [1]);
  assert.equal(calls.filter((c) => c === "unet").length, 2);
});

test("the steps are reported in order, each once, and the latents come back after the last", async () => {
  const { pipeline, live } = fakePipeline();
  /** @type {number[]} */
  const steps = [];
  /** @type {number[]} */
  const previews = [];
  const result = await pipeline.generate(
    { prompt: "a cat", steps: 5, previewEvery: 2 },
    { onStep: (p) => steps.push(p.step), onPreview: (p) => previews.push(p.step) },
  );
  assert.deepEqual(steps, [1, 2, 3, 4, 5]);
  assert.deepEqual(previews, [2, 4]);
  assert.equal(result.timings.unetStepMs.length, 5);
  assert.ok(result.timings.unetStepMs.every((ms) => ms >= 0));
  assert.equal(live.size, 0);
});

test("sdxl encodes an absent negative prompt as zeros and releases every tensor", () => {
  const { model, live, calls } = fakeModel(xlManifest());
  const tokenizer = { encode: () => Int32Array.from([1017, 5, 1018]) };
  const pipeline = new SDXLPipeline(model, tokenizer, tokenizer);
  for (const c of pipeline.encodePrompt({ prompt: "a cat", negativePrompt: null })) c.dispose();
  assert.equal(calls.filter((c) => c === "text_encoder_2").length, 1);
  for (const c of pipeline.encodePrompt({ prompt: "a cat", negativePrompt: "blurry" })) c.dispose();
  assert.equal(calls.filter((c) => c === "text_encoder_2").length, 3);
  assert.equal(live.size, 0);
});

test("the inpainting mask is diffusers' binarised grayscale, nearest to the latents", async () => {
  const { binaryMask, latentMask } = await import("../../src/wsd_web/static/js/pipelines/inpainting.js");
  // 4x4 RGBA: white, black, a gray just under half (127) and just over (128), a pure red (luma 76).
  const values = [[255, 255, 255], [0, 0, 0], [127, 127, 127], [128, 128, 128], [255, 0, 0]];
  const rgba = new Uint8ClampedArray(4 * 4 * 4);
  for (let i = 0; i < 16; i++) rgba.set([...values[i % values.length], 255], 4 * i);
  const mask = binaryMask({ rgba, width: 4, height: 4 }, 4, 4);
  assert.deepEqual(Array.from(mask.slice(0, 5)), [1, 0, 0, 1, 0]);
  assert.deepEqual(Array.from(latentMask(mask, 4, [1, 4, 2, 2], 2)), [mask[0], mask[2], mask[8], mask[10]]);
  assert.throws(() => binaryMask({ rgba, width: 2, height: 8 }, 4, 4), /the mask is 2x8 \(64 bytes\) but the image is 4x4: give a mask of the image's size/);
  assert.throws(() => binaryMask(/** @type {any} */ (undefined), 4, 4), /inpainting needs a mask/);
});

test("inpainting pipelines are registered for both kinds, with the image and mask options", () => {
  for (const kind of ["sd15", "sdxl"]) {
    const cls = pipelineClass(kind, "inpainting");
    assert.equal(cls.encodesImage, true);
    assert.deepEqual(cls.optionGroups.slice(-2), ["image", "mask"]);
  }
});
