// Generates with a compiled SD build on WebGPU in Node through Dawn (npm
// `webgpu`): the same modules as the page (model loader, tokenizer, pipeline,
// schedulers, noise), with files read from disk. Prints one JSON line: the
// adapter, the kernel path run ("kernelPath") and the better ones passed over
// with why ("passedOver"), load time, timings of every stage, and the RGBA
// pixels (base64) and final latents when asked; each run says how many tiles
// the VAE decoded the image in ("vaeTiles", 0: whole) and encoded the start
// image in ("vaeEncodeTiles", 0: whole or none) and the most GPU bytes
// held during each stage ("peakBytes": textEncoder, denoise, decode), whether it
// ran with sequential offload ("offload") and the GPU bytes the build reckons its
// modes need ("memoryNeedBytes", null: the build does not say).
//   node render.mjs DIR [OPTIONS_JSON] [--vae-tiles auto|on|off] [--offload] [--memory-budget GIB]
// OPTIONS_JSON: {"prompt": ..., "negativePrompt", "seed", "steps", "guidance",
//   "scheduler", "returnLatents", "returnPixels", "repeat", "variations", and for SDXL
//   "originalSize", "cropsCoordsTopLeft", "targetSize", and for image to image
//   "task": "image-to-image", "image": {"rgba": base64, "width", "height"},
//   "strength", and for inpainting "task": "inpainting", "image", "mask" (the
//   same form: white is repainted), "strength"} ("repeat": generate N times and report each generation's
//   timings; "variations": a list of option objects, each laid over the rest
//   for its own generations (one loaded model, several settings, tasks and
//   pictures), reported in
//   order with its index as "variation"; "kernelPath": run the build's
//   kernel path of that name or fail, instead of the first the device runs;
//   "vaeTiling", or --vae-tiles: run the VAE in tiles (decode, and encode
//   where the build can) where the device needs it (auto, the default), in
//   tiles (on) or whole (off); "offload": true, or
//   --offload: sequential offload, the text encoders' and the VAE decoder's
//   weights on the GPU only while they run, uploaded again every generation;
//   "memoryBudget" in bytes, or --memory-budget in GiB: a build that cannot fit
//   is refused before its library and weights are read, and offload and tiles,
//   where not given, are chosen to fit; "loras": [{"path", "scale"}], LoRA files
//   merged into the weights for the generations, per variation too, reported with
//   the time the change took ("loraMs"; a file that does not fit: "loraError", the
//   LoRAs stay as they were and that variation does not generate); "weightDigest": report a SHA-256 of the
//   UNet's and text encoders' weights as they are on the GPU after each generation).
// On a machine without a GPU, point Vulkan at SwiftShader:
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { globals } from "webgpu";

import { SDModel, parseManifest, sequentialSource } from "../static/js/sd_model.js";
import { createPipeline } from "../static/js/sd_pipeline.js";
import { requestGPU } from "../static/js/webgpu_device.js";
import { createDawn } from "./dawn.mjs";
import { buildFiles } from "./files.mjs";
import { runnerArgsOrExit } from "./runner_args.mjs";

const args = runnerArgsOrExit("render.mjs");
const dir = args.dir;
const { returnPixels = false, repeat = 1, seed = 0, kernelPath = null, task, image, mask, variations = [{}], loras = [], weightDigest = false, ...options } = args.options;
Object.assign(globalThis, globals);
const require = createRequire(import.meta.url);
// The vendored UMD bundles, loaded as CommonJS (see scripts/vendor.mjs); a
// computed path keeps tsc from type-checking third-party code.
// eslint-disable-next-line security/detect-non-literal-require -- one of our two vendored bundles, by name
const vendored = (/** @type {string} */ name) => require(`../static/vendor/${name}/index.js`);
const tvmjs = vendored("tvmjs");
const tokenizers = vendored("tokenizers");
const dawn = createDawn();
const gpu = await requestGPU(dawn.gpu);
/** @param {string} path */
const fetchBytes = buildFiles(dir);
let status = 0;
/** @type {SDModel | null} */
let model = null;
try {
  const start = performance.now();
  const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await fetchBytes("manifest.json"))));
  const files = sequentialSource(fetchBytes);
  const loaded = await SDModel.load({ tvmjs, gpu, manifest, files, kernelPath, memoryBudget: options.memoryBudget });
  model = loaded;
  /** @type {Map<string | undefined, Promise<import("../static/js/sd_pipeline.js").SD15Pipeline>>} */
  const pipelines = new Map();
  const pipelineFor = (/** @type {string | undefined} */ t) => {
    if (!pipelines.has(t)) pipelines.set(t, createPipeline(/** @type {SDModel} */ (model), tokenizers, fetchBytes, t));
    return /** @type {Promise<import("../static/js/sd_pipeline.js").SD15Pipeline>} */ (pipelines.get(t));
  };
  // Text to image unless told, or the build's first task where it has none (an inpainting checkpoint's).
  const tasks = Object.keys(model.manifest.tasks);
  const defaultTask = task ?? (tasks.includes("text-to-image") ? "text-to-image" : tasks[0]);
  await pipelineFor(defaultTask);
  // Image to image and inpainting: {rgba (base64), width, height}.
  const pixels = (/** @type {any} */ given) => given
    ? { rgba: new Uint8ClampedArray(Buffer.from(given.rgba, "base64")), width: given.width, height: given.height }
    : undefined;

  /** @type {Map<string, import("../static/js/lora.js").Lora>} */
  const loraFiles = new Map();
  const readLoras = async (/** @type {{path: string, scale?: number}[]} */ list) => {
    const found = [];
    for (const { path, scale = 1 } of list) {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a LoRA file the caller names
      if (!loraFiles.has(path)) loraFiles.set(path, loaded.readLora(new Uint8Array(await readFile(path)), path.split("/").pop() ?? path));
      found.push({ lora: /** @type {import("../static/js/lora.js").Lora} */ (loraFiles.get(path)), scale });
    }
    return found;
  };
  // The GPU's weights of the components a LoRA changes, hashed.
  const digest = async () => {
    const hash = createHash("sha256");
    for (const component of ["text_encoder", "text_encoder_2", "unet"]) {
      for (const t of loaded.weights.tensors.get(component) ?? []) hash.update(await loaded.session.downloadBytes(t));
    }
    return hash.digest("hex");
  };

  const loadMs = performance.now() - start;
  const runs = [];
  const generations = /** @type {Record<string, any>[]} */ (variations).flatMap((v, index) => Array(repeat).fill([v, index]));
  for (const [variation, index] of generations) {
    const settings = { prompt: "", ...options, ...variation };
    const pictures = { image: pixels(variation.image ?? image), mask: pixels(variation.mask ?? mask) };
    const pipeline = await pipelineFor(variation.task ?? defaultTask);
    const loraStart = performance.now();
    // A LoRA that does not fit is reported, and the generation runs with the model as it was.
    const loraError = await readLoras(variation.loras ?? loras).then((l) => loaded.loras.set(l)).then(
      () => null, (/** @type {unknown} */ e) => (e instanceof Error ? e.message : String(e)));
    await loaded.session.sync();
    const loraMs = performance.now() - loraStart;
    if (loraError) {
      runs.push({ variation: index, loraError, loras: loaded.loras.describe(), ...(weightDigest ? { weightDigest: await digest() } : {}) });
      continue;
    }
    const result = await pipeline.generate({ ...settings, ...pictures, seed: BigInt(settings.seed ?? seed) });
    runs.push({
      variation: index,
      scheduler: result.scheduler,
      vaeTiles: result.vaeTiles,
      vaeEncodeTiles: result.vaeEncodeTiles,
      offload: result.offload,
      timings: result.timings,
      peakBytes: result.peakBytes,
      memoryNeedBytes: result.memoryNeedBytes,
      gpuBytes: model.session.allocatedBytes(),
      loraMs, loras: loaded.loras.describe(),
      ...(weightDigest ? { weightDigest: await digest() } : {}),
      ...(returnPixels ? { rgba: Buffer.from(result.rgba).toString("base64") } : {}),
      ...(result.latents ? { latents: Array.from(result.latents) } : {}),
    });
  }
  const report = {
    adapter: gpu.adapter, features: gpu.features, dawnToggles: dawn.toggles,
    kernelPath: model.kernelPath.name, passedOver: model.passedOver, vaeTiling: options.vaeTiling,
    offload: options.offload ?? null, memoryBudget: options.memoryBudget ?? null,
    loadMs, width: model.manifest.image.width, height: model.manifest.image.height, runs,
  };
  // stdout may be a pipe (asynchronous): wait for the write before exiting.
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(report)}\n`, resolve));
} catch (error) {
  process.stderr.write(`render failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  model?.dispose();
  gpu.device.destroy();
}
process.exit(status);
