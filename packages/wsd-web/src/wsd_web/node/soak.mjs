// A soak of a compiled SD build on WebGPU in Node through Dawn (npm `webgpu`):
// the build is loaded once, with the page's tvmjs runtime, model library and
// JS pipeline, and then runs many generations in this one process, the prompts
// in turn (soak_plan.mjs: empty ones, long ones), every scheduler the build's
// page offers in turn and a new seed each. After each generation it records the
// GPU bytes tvmjs holds (nothing released: what stays between generations) and
// the most it held during the generation. Issue 18's bar: after the last
// generation the runtime holds what it held after the first, with no error.
//   node soak.mjs DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]
// OPTIONS_JSON: {"generations": 100, "steps": 20, "toleranceBytes": 0, "seed": 0,
//   "guidance": 7.5, "randomWeights": null | SEED, "kernelPath": null | NAME,
//   "schedulers": null | [NAME, ...]}
// (seed: generation i runs with seed + i; schedulers: the ones to cycle through, in
// that order, default every one the page offers for the build; randomWeights,
// kernelPath, --vae-tiles, --offload and --memory-budget as bench.mjs takes them).
// Prints one JSON object (the last line of stdout): the build, the device
// (adapter, features, dawn_toggles), the options, "rows" (one per generation:
// index, prompt_index, prompt, negative_prompt, scheduler, seed, seconds,
// allocated_after, peak_bytes, stage_peak_bytes, vae_tiles, offload, error) and
// "summary" (soak_plan.mjs's summarize, with allocated_after_load: held before
// the first generation, and allocated_after_release: held after the last once
// the VM's pooled buffers are freed, null after an error). A line per
// generation goes to stderr ("soak: ..."). The first error stops the soak.
// Exit status: 0 passed; 1 an error, or a growth over toleranceBytes (each said
// on stderr, "soak failed: ..."; the report is printed all the same); 2 a wrong
// command line.
// On a machine without a GPU, point Vulkan at SwiftShader:
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import { basename, resolve } from "node:path";
import { globals } from "webgpu";

import { SDModel, parseManifest, sequentialSource } from "../static/js/sd_model.js";
import { availableSchedulers, createPipeline } from "../static/js/sd_pipeline.js";
import { requestGPU } from "../static/js/webgpu_device.js";
import { createDawn } from "./dawn.mjs";
import { buildSource, vendoredModules } from "./load_build.mjs";
import { runnerArgsOrExit } from "./runner_args.mjs";
import { failureLines, soakOptions, soakPlan, soakSchedulers, summarize } from "./soak_plan.mjs";

/** @typedef {import("./soak_plan.mjs").SoakOptions} SoakOptions */
/** @typedef {import("./soak_plan.mjs").SoakRow} SoakRow */
/** @typedef {import("../static/js/sd_pipeline.js").SD15Pipeline} Pipeline */

const args = runnerArgsOrExit("soak.mjs");
/** @type {SoakOptions} */
let soak;
try {
  soak = soakOptions(args.options);
} catch (error) {
  process.stderr.write(`usage: node soak.mjs DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]\n`
    + `${error instanceof Error ? error.message : error}\n`);
  process.exit(2);
}
const { vaeTiling, offload, memoryBudget } = args.options;

/** @param {string} line */
const say = (line) => process.stderr.write(`soak: ${line}\n`);

/**
 * Run one generation of the plan; its row (with the error that stopped it, if one did).
 * @param {Pipeline} pipeline
 * @param {ReturnType<typeof soakPlan>} plan
 */
async function generation(pipeline, plan) {
  const session = pipeline.session;
  const { prompt, negativePrompt } = plan;
  const start = performance.now();
  /** @type {SoakRow} */
  const row = {
    index: plan.index, prompt_index: plan.promptIndex, prompt, negative_prompt: negativePrompt,
    scheduler: plan.scheduler, seed: plan.seed, seconds: 0, allocated_after: 0, peak_bytes: null,
    stage_peak_bytes: null, vae_tiles: null, offload: null, error: null,
  };
  try {
    const result = await pipeline.generate({
      prompt,
      negativePrompt: pipeline.defaultNegativePrompt === null ? negativePrompt || null : negativePrompt,
      scheduler: plan.scheduler, seed: BigInt(plan.seed), steps: soak.steps, guidance: soak.guidance,
      vaeTiling, offload, memoryBudget,
    });
    row.peak_bytes = Math.max(result.peakBytes.textEncoder, result.peakBytes.denoise, result.peakBytes.decode);
    row.stage_peak_bytes = result.peakBytes;
    row.vae_tiles = result.vaeTiles;
    row.offload = result.offload;
  } catch (error) {
    row.error = error instanceof Error ? error.message : String(error);
    process.stderr.write(`soak: generation ${plan.index} failed: ${error instanceof Error ? error.stack : error}\n`);
  }
  row.seconds = (performance.now() - start) / 1000;
  row.allocated_after = session.allocatedBytes();
  return row;
}

/**
 * The soak's generations, one after another, until the last or the first error.
 * @param {Pipeline} pipeline
 * @param {ReadonlyArray<string>} schedulers
 */
async function soakRows(pipeline, schedulers) {
  /** @type {SoakRow[]} */
  const rows = [];
  for (let i = 0; i < soak.generations; i++) {
    const row = await generation(pipeline, soakPlan(i, schedulers, soak.seed));
    rows.push(row);
    const change = rows.length > 1 ? row.allocated_after - rows[rows.length - 2].allocated_after : 0;
    say(`${i + 1}/${soak.generations} ${row.scheduler} seed ${row.seed} prompt ${row.prompt_index}: `
      + `${row.seconds.toFixed(2)} s, ${row.allocated_after} bytes allocated after (${change >= 0 ? "+" : ""}${change})`
      + `${row.error === null ? "" : `, failed: ${row.error}`}`);
    if (row.error !== null) break;
  }
  return rows;
}

/**
 * Load the build, run the soak, and the report.
 * @param {{tvmjs: any, tokenizers: any}} modules
 * @param {import("../static/js/webgpu_device.js").GPUInfo} gpu
 * @param {string[]} toggles
 * @param {(model: SDModel) => void} loaded  Told the model once loaded (to dispose it at the end).
 */
async function runSoak({ tvmjs, tokenizers }, gpu, toggles, loaded) {
  const root = resolve(args.dir);
  const get = await buildSource(root, { randomWeights: soak.randomWeights, keep: Boolean(offload || memoryBudget != null) });
  const loadStart = performance.now();
  const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await get("manifest.json"))));
  // As the page loads it: with --offload the offloadable weights are not uploaded at load.
  const model = await SDModel.load({
    tvmjs, gpu, manifest, files: sequentialSource(get), kernelPath: soak.kernelPath, memoryBudget,
    offload: offload ?? false,
  });
  loaded(model);
  const pipeline = await createPipeline(model, tokenizers, get);
  const loadMs = performance.now() - loadStart;
  const schedulers = soakSchedulers(soak.schedulers, availableSchedulers(manifest.scheduler));
  const session = model.session;
  const allocatedAfterLoad = session.allocatedBytes();
  say(`loaded ${basename(root)} in ${(loadMs / 1000).toFixed(1)} s: ${allocatedAfterLoad} bytes allocated; `
    + `${soak.generations} generations of ${soak.steps} steps with ${schedulers.join(", ")}`);
  const rows = await soakRows(pipeline, schedulers);
  const summary = summarize(rows, soak.toleranceBytes, schedulers.length);
  let allocatedAfterRelease = null;
  if (summary.errors.length === 0) {
    session.releasePooledMemory();
    allocatedAfterRelease = session.allocatedBytes();
  }
  return {
    runtime: "webgpu",
    tool: "wsd-web soak",
    kind: manifest.kind,
    model: basename(root),
    build_id: manifest.build_id,
    precision: manifest.model.precision,
    kernelPath: model.kernelPath.name,
    height: manifest.image.height,
    width: manifest.image.width,
    adapter: gpu.adapter,
    features: gpu.features,
    dawn_toggles: toggles,
    node: process.version,
    random_weights: soak.randomWeights !== null,
    vaeTiling,
    offload: offload ?? null,
    memoryBudget: memoryBudget ?? null,
    generations_requested: soak.generations,
    steps: soak.steps,
    guidance: soak.guidance,
    schedulers,
    load_ms: loadMs,
    rows,
    summary: { ...summary, allocated_after_load: allocatedAfterLoad, allocated_after_release: allocatedAfterRelease },
  };
}

Object.assign(globalThis, globals);
const dawn = createDawn();
const gpu = await requestGPU(dawn.gpu);
let status = 0;
/** @type {SDModel | null} */
let model = null;
try {
  const report = await runSoak(vendoredModules(), gpu, dawn.toggles, (m) => { model = m; });
  const failures = failureLines(report.summary);
  for (const line of failures) process.stderr.write(`soak failed: ${line}\n`);
  if (failures.length > 0) status = 1;
  // stdout may be a pipe (asynchronous): wait for the write before exiting.
  await new Promise((done) => process.stdout.write(`${JSON.stringify(report)}\n`, done));
} catch (error) {
  process.stderr.write(`soak failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  /** @type {SDModel | null} */ (model)?.dispose();
  gpu.device.destroy();
}
process.exit(status);
