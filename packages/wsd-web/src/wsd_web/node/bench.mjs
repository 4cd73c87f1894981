// Benchmarks a compiled SD build on WebGPU in Node through Dawn (npm
// `webgpu`), with the same tvmjs runtime, model library and JS pipeline as the
// page. Prints one JSON object (the fields `wsd-web bench` documents).
//   node bench.mjs DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]
// OPTIONS_JSON: {"steps": 20, "warmup": 3, "repeats": 10, "robustness": true,
//   "randomWeights": null | SEED, "profile": true, "prompt": ..., "negativePrompt": ...,
//   "kernelPath": null | NAME, "vaeTiling": "auto" | "on" | "off", "offload": false,
//   "memoryBudget": null | BYTES, "keptBindings": true}
// "kernelPath": NAME runs the build's kernel path of that name (or fails)
// instead of the first the device runs; the report's "kernelPath" names the one run.
// "vaeTiling" (or --vae-tiles): the VAE decode stage and the generations decode
// in tiles where the device needs it (auto, the default), in tiles (on) or whole
// (off); the report's "vaeTiling" is the mode, "vaeTiles" the tiles decoded (0: whole).
// "offload": true (or --offload): the generations run with sequential offload (the
// text encoders' and the VAE decoder's weights on the GPU only while they run,
// uploaded again each generation, which generation_ms includes); the stage timings
// run with every weight on the GPU. "memoryBudget" (or --memory-budget GIB): a
// build that cannot fit is refused before its library and weights are read, and
// the generations (and the VAE decode stage) choose offload and tiles, where not
// given, to fit. The report's "offload" says which mode the generations ran with,
// "memoryBudget" the budget (bytes, null: none) and "memoryNeedBytes" the bytes the
// build reckons the generations' modes need (the last timed one's; null: the build
// does not say);
// "stagePeakBytes" is the most GPU bytes held during each stage of a generation
// ({textEncoder, denoise, decode}, the maximum over the timed generations), and
// "peak_gpu_bytes" the most held at any time of the whole run.
// "randomWeights": SEED fills every weight with seeded pseudo-random values
// instead of reading the shards, so DIR needs only the manifest, library,
// weight index and tokenizer(s) (a benchmark machine need not receive GBs).
// "keptBindings": false dispatches with tvmjs' own dispatch (a bind group made and the
// scalars written at every dispatch) instead of kept bindings (js/kernel_dispatch.js);
// "unet_record_ms" is the CPU time of recording one UNet call, "bindings" how many
// bind groups were made and how many dispatches reused one.
// "kernels" is the median UNet call's GPU time per kernel, "vae_kernels" one whole
// VAE decode's (empty where the decode runs in tiles or the device has no timestamps),
// "text_encoder_kernels" one prompt encoding's (both prompts, and their pairing).
// "robustness": false asks Dawn for its `disable_robustness` toggle (no
// bounds checks in shaders; browsers always keep them on).
// On a machine without a GPU, point Vulkan at SwiftShader:
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import { basename, resolve } from "node:path";
import { globals } from "webgpu";

import { SDModel, parseManifest, sequentialSource } from "../static/js/sd_model.js";
import { createPipeline, defaultSchedulerName, gpuTensorOps } from "../static/js/sd_pipeline.js";
import { createScheduler } from "../static/js/schedulers/index.js";
import { TorchGenerator } from "../static/js/torch_random.js";
import { TVMSession } from "../static/js/tvm_session.js";
import { requestGPU } from "../static/js/webgpu_device.js";
import { createDawn } from "./dawn.mjs";
import { KernelProfiler } from "./gpu_profiler.mjs";
import { buildSource, vendoredModules } from "./load_build.mjs";
import { runnerArgsOrExit } from "./runner_args.mjs";

const args = runnerArgsOrExit("bench.mjs");
const dir = args.dir;
const {
  steps = 20, warmup = 3, repeats = 10, robustness = true, randomWeights = null, profile = true,
  prompt = "a photograph of an astronaut riding a horse", negativePrompt = "blurry", kernelPath = null, vaeTiling,
  offload, memoryBudget, keptBindings = true,
} = args.options;

/**
 * Median, extremes and every sample of a list of times.
 * @param {number[]} samples
 */
function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], samples };
}

/**
 * A profile's GPU time: its kernels' milliseconds summed.
 * @param {import("./gpu_profiler.mjs").KernelTime[]} kernels
 */
function kernelsMs(kernels) {
  return kernels.reduce((sum, k) => sum + k.ms, 0);
}

/**
 * A profile's kernels, each with its share of the profile's GPU time.
 * @param {import("./gpu_profiler.mjs").KernelTime[]} kernels
 */
function withShares(kernels) {
  const total = kernelsMs(kernels);
  return kernels.map((k) => ({ ...k, share: k.ms / total }));
}

Object.assign(globalThis, globals);
const { tvmjs, tokenizers } = vendoredModules();
// Dawn quantizes timestamps (to blur timing attacks) unless told not to; it
// changes no kernel. disable_robustness drops the shaders' bounds checks.
const dawn = createDawn({
  enable: robustness ? [] : ["disable_robustness"],
  disable: profile ? ["timestamp_quantization"] : [],
});
const gpu = await requestGPU(dawn.gpu, { optionalFeatures: ["timestamp-query"] });
// With offload (or a budget that may choose it) weights are fetched again every
// generation: random shards are made once and kept, so a generation's time counts
// their upload, as a page's would, not making them.
const get = await buildSource(resolve(dir), { randomWeights, keep: Boolean(offload || memoryBudget != null) });
let status = 0;
/** @type {SDModel | null} */
let model = null;
/** @type {KernelProfiler | null} */
let profiler = null;
TVMSession.keepBindings = keptBindings;
try {
  const loadStart = performance.now();
  const manifestJson = JSON.parse(new TextDecoder().decode(await get("manifest.json")));
  const files = sequentialSource(get);
  const loaded = await SDModel.load({ tvmjs, gpu, manifest: parseManifest(manifestJson), files, kernelPath, memoryBudget });
  model = loaded;
  const loadMs = performance.now() - loadStart;
  const session = loaded.session;
  if (profile && gpu.features.includes("timestamp-query")) profiler = new KernelProfiler(gpu.device, session);
  session.resetPeakAllocatedBytes();

  const compileStart = performance.now();
  await session.compileShaders();
  const compileMs = performance.now() - compileStart;

  const pipeline = await createPipeline(loaded, tokenizers, get);
  const manifest = loaded.manifest;
  const shape = manifest.latent.shape;
  const sync = () => pipeline.sync();
  const options = {
    prompt, negativePrompt: pipeline.defaultNegativePrompt === null ? negativePrompt || null : negativePrompt, vaeTiling,
    memoryBudget,
  };
  /** @typedef {{dispose(): void}} Disposable */
  /**
   * Time `run` (which returns, or resolves to, what to dispose) `warmup` + `repeats` times.
   * @param {() => Disposable | Disposable[] | Promise<Disposable>} run
   */
  const time = async (run, times = repeats) => {
    const samples = [];
    for (let i = 0; i < warmup + times; i++) {
      const start = performance.now();
      const made = await run();
      await sync();
      const ms = performance.now() - start;
      for (const t of [made].flat()) t.dispose();
      if (i >= warmup) samples.push(ms);
    }
    return stats(samples);
  };

  const textEncoder = await time(() => pipeline.encodePrompt(options));
  const conditioning = pipeline.encodePrompt(options);
  const generator = new TorchGenerator(0n);
  const latents = session.persist(() => pipeline.tensor(shape, generator.randn(shape)));
  const pair = session.persist(() => loaded.call("unet_input", latents, pipeline.scalar(1)));
  const t = 500;
  const unetCall = () => session.persist(() => loaded.call("unet", pair, pipeline.scalar(t), ...conditioning));
  const unetStep = await time(unetCall);
  // The CPU's share of a step: recording (and submitting) one UNet call, the GPU idle before it.
  const recordSamples = [];
  for (let i = 0; i < warmup + repeats; i++) {
    await sync();
    const start = performance.now();
    const out = unetCall();
    const ms = performance.now() - start;
    await sync();
    out.dispose();
    if (i >= warmup) recordSamples.push(ms);
  }
  const unetRecord = stats(recordSamples);

  /** @type {ReturnType<typeof stats> | null} */
  let unetGpu = null;
  /** @type {import("./gpu_profiler.mjs").KernelTime[][]} */
  const profiles = [];
  if (profiler) {
    for (let i = 0; i < warmup + repeats; i++) {
      profiler.start();
      const out = unetCall();
      await sync();
      const kernels = await profiler.stop();
      out.dispose();
      if (i >= warmup) profiles.push(kernels);
    }
    unetGpu = stats(profiles.map(kernelsMs));
  }

  const pred = unetCall();
  const schedulerName = defaultSchedulerName(manifest.scheduler);
  const scheduler = createScheduler(schedulerName, manifest.scheduler.config, gpuTensorOps(loaded, shape, generator));
  scheduler.setTimesteps(steps);
  let step = 0;
  const schedulerStep = await time(() => {
    // More timed calls than the schedule has steps start it over (multistep
    // schedulers such as PNDM refuse a step past their plan).
    if (step > 0 && step % scheduler.timesteps.length === 0) scheduler.setTimesteps(steps);
    const timestep = scheduler.timesteps[step++ % scheduler.timesteps.length];
    const guided = session.persist(() => loaded.call("cfg_combine", pred, pipeline.scalar(7.5)));
    const next = scheduler.step(guided, timestep, latents);
    return [guided, next];
  });
  // The decode as the generations do it: whole, or in tiles blended on the CPU (then uploaded).
  const imageShape = [1, 3, manifest.image.height, manifest.image.width];
  const vaeDecode = await time(loaded.memoryMode({ vaeTiling, offload, budget: memoryBudget }).tiles
    ? async () => {
      const { image } = await pipeline.decodeTiles(latents);
      return session.persist(() => loaded.call("image_to_rgba", pipeline.tensor(imageShape, image)));
    }
    : () => session.persist(() => loaded.call("image_to_rgba", loaded.call("vae_decode", latents))));
  // One whole decode profiled per kernel, after the timed ones: the VAE decoder's breakdown.
  /** @type {{name: string, calls: number, ms: number, share: number}[]} */
  let vaeKernels = [];
  if (profiler && !loaded.memoryMode({ vaeTiling, offload, budget: memoryBudget }).tiles) {
    profiler.start();
    const image = session.persist(() => loaded.call("vae_decode", latents));
    await sync();
    vaeKernels = withShares(await profiler.stop());
    image.dispose();
  }
  // One prompt encoding profiled per kernel: what the text encoder stage's GPU time is.
  /** @type {{name: string, calls: number, ms: number, share: number}[]} */
  let textEncoderKernels = [];
  if (profiler) {
    profiler.start();
    const encoded = pipeline.encodePrompt(options);
    await sync();
    textEncoderKernels = withShares(await profiler.stop());
    for (const t of encoded) t.dispose();
  }
  const generations = [];
  const generationRepeats = Math.max(2, Math.ceil(repeats / 3));
  let vaeTiles = 0;
  /** The mode the generations ran with, and the bytes the build reckons it needs. */
  let ran = { offload: false, memoryNeedBytes: /** @type {number | null} */ (null) };
  /** Each stage's most GPU bytes over the timed generations. */
  const stagePeakBytes = { textEncoder: 0, denoise: 0, decode: 0 };
  for (let i = 0; i < 1 + generationRepeats; i++) {
    const result = await pipeline.generate({ ...options, offload, steps, seed: BigInt(i) });
    if (i >= 1) {
      generations.push(result.timings.totalMs);
      for (const stage of /** @type {const} */ (["textEncoder", "denoise", "decode"])) {
        stagePeakBytes[stage] = Math.max(stagePeakBytes[stage], result.peakBytes[stage]);
      }
    }
    vaeTiles = result.vaeTiles;
    ran = { offload: result.offload, memoryNeedBytes: result.memoryNeedBytes };
  }
  for (const x of [...conditioning, latents, pair, pred]) x.dispose();
  scheduler.dispose();

  // Per kernel: the median run's list, each kernel's share of that run.
  /** @type {{name: string, calls: number, ms: number, share: number}[]} */
  let kernels = [];
  if (unetGpu) {
    const totals = profiles.map(kernelsMs);
    const order = totals.map((_, i) => i).sort((a, b) => totals[a] - totals[b]);
    kernels = withShares(profiles[order[order.length >> 1]]);
  }
  const report = {
    runtime: "webgpu",
    tool: "wsd-web bench",
    kind: manifest.kind,
    model: basename(resolve(dir)),
    build_id: manifest.build_id,
    precision: manifest.model.precision,
    quantize: manifest.model.quantize ?? "none",
    kernelPath: loaded.kernelPath.name,
    vaeTiling,
    vaeTiles,
    offload: ran.offload,
    memoryBudget: memoryBudget ?? null,
    height: manifest.image.height,
    width: manifest.image.width,
    steps,
    batch: 2,
    scheduler: schedulerName,
    adapter: gpu.adapter,
    features: gpu.features,
    dawn_toggles: dawn.toggles,
    robustness,
    random_weights: randomWeights !== null,
    warmup,
    repeats,
    load_ms: loadMs,
    pipeline_compile_ms: compileMs,
    stages: {
      text_encoder_ms: textEncoder,
      unet_step_ms: unetStep,
      scheduler_step_ms: schedulerStep,
      vae_decode_ms: vaeDecode,
      generation_ms: stats(generations),
    },
    unet_step_gpu_ms: unetGpu,
    unet_record_ms: unetRecord,
    bindings: session.dispatch && { made: session.dispatch.bindings.made, reused: session.dispatch.bindings.reused },
    kernels,
    vae_kernels: vaeKernels,
    text_encoder_kernels: textEncoderKernels,
    peak_gpu_bytes: session.peakAllocatedBytes(),
    stagePeakBytes,
    memoryNeedBytes: ran.memoryNeedBytes,
  };
  await new Promise((done) => process.stdout.write(`${JSON.stringify(report)}\n`, done));
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  profiler?.dispose();
  model?.dispose();
  gpu.device.destroy();
}
process.exit(status);
