// The page: loads the build at ?model=DIR (default "model/"), wires the controls
// to the pipeline of its kind (SD 1.5 or SDXL, from the manifest), draws
// previews and the result, and shows timings.
// `window.wsd` is the same app for automation (wsd-web render, tests).

import { SDModel } from "./sd_model.js";
import { CancelledError, availableSchedulers, createPipeline, defaultSchedulerName } from "./sd_pipeline.js";
import { requestGPU } from "./webgpu_device.js";

/** @typedef {import("./sd_pipeline.js").Generation} Generation */
/** @typedef {import("./sd_pipeline.js").GenerateOptions} GenerateOptions */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const status = /** @type {HTMLElement} */ ($("status"));
const progress = /** @type {HTMLProgressElement} */ ($("progress"));
const canvas = /** @type {HTMLCanvasElement} */ ($("canvas"));
const base = new URL(new URLSearchParams(location.search).get("model") ?? "model/", location.href);

/**
 * @param {string} path
 * @param {(n: number) => void} [onBytes]
 */
async function fetchBytes(path, onBytes) {
  const response = await fetch(new URL(path, base));
  if (!response.ok || !response.body) {
    throw new Error(`fetching ${response.url} failed: HTTP ${response.status}; check that the server is running`);
  }
  const chunks = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    onBytes?.(value.byteLength);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** @param {string} text @param {boolean} [error] */
function say(text, error = false) {
  status.textContent = text;
  status.className = error ? "error" : "";
}

/** @param {import("./sd_pipeline.js").Image} img */
function draw(img) {
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.putImageData(new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height), 0, 0);
}

/** @param {import("./sd_pipeline.js").Timings} t */
function showTimings(t) {
  const sorted = [...t.unetStepMs].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  const rows = [
    ["text encoder (2 prompts)", t.textEncoderMs],
    [`UNet step, median of ${sorted.length}`, median],
    ["UNet steps, total", t.unetStepMs.reduce((a, b) => a + b, 0)],
    ["VAE decode", t.vaeMs],
    ["total", t.totalMs],
  ];
  const body = $("timings").tBodies[0];
  body.replaceChildren();
  for (const [name, ms] of rows) {
    const row = body.insertRow();
    row.insertCell().textContent = String(name);
    const cell = row.insertCell();
    cell.className = "num";
    cell.textContent = `${Number(ms).toFixed(1)} ms`;
  }
}

async function load() {
  const gpu = await requestGPU(navigator.gpu);
  const model = await SDModel.load({
    tvmjs: /** @type {any} */ (window).tvmjs,
    gpu,
    fetchBytes,
    onProgress: ({ loadedBytes, totalBytes }) => {
      progress.value = loadedBytes / totalBytes;
      say(`Loading the model: ${(loadedBytes / 2 ** 20).toFixed(1)} of ${(totalBytes / 2 ** 20).toFixed(1)} MiB`);
    },
  });
  const m = model.manifest;
  const pipeline = await createPipeline(model, /** @type {any} */ (window).tokenizers, fetchBytes);
  if (m.kind === "sdxl") {
    $("xl-options").hidden = false;
    for (const id of ["original-h", "target-h"]) $(id).placeholder = String(m.image.height);
    for (const id of ["original-w", "target-w"]) $(id).placeholder = String(m.image.width);
  }
  const select = /** @type {HTMLSelectElement} */ ($("scheduler"));
  const preferred = defaultSchedulerName(m.scheduler);
  for (const name of availableSchedulers(m.scheduler.config)) {
    select.add(new Option(name, name, false, name === preferred));
  }
  $("model-info").textContent =
    `${m.model.source} (${m.kind}, ${m.model.precision}, ${m.image.width}×${m.image.height}) on ${gpu.adapter}`;
  progress.value = 1;
  say("Ready.");
  return { model, pipeline, adapter: gpu.adapter };
}

const ready = load();
/** @type {AbortController | null} */
let running = null;

/**
 * Generate with the page's pipeline and draw the result.
 * @param {GenerateOptions} options
 * @returns {Promise<Generation>}
 */
async function generate(options) {
  const { pipeline } = await ready;
  if (running) throw new Error("a generation is already running: wait for it or cancel it");
  running = new AbortController();
  $("generate").disabled = true;
  $("cancel").disabled = false;
  progress.value = 0;
  try {
    const result = await pipeline.generate({ ...options, signal: running.signal }, {
      onStep: ({ step, total, ms }) => {
        progress.value = step / total;
        say(`Step ${step} of ${total} (${ms.toFixed(0)} ms)`);
      },
      onPreview: draw,
    });
    draw(result);
    showTimings(result.timings);
    say(`Done in ${(result.timings.totalMs / 1000).toFixed(2)} s with ${result.scheduler}.`);
    $("download").disabled = false;
    return result;
  } catch (e) {
    say(e instanceof CancelledError ? "Cancelled." : String(e), !(e instanceof CancelledError));
    throw e;
  } finally {
    running = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
  }
}

/**
 * A (height, width)-like pair from two inputs; undefined when both are empty.
 * @param {string} a
 * @param {string} b
 * @param {[number, number]} fallback  Used for an empty one of the two.
 * @returns {[number, number] | undefined}
 */
function pair(a, b, fallback) {
  const [x, y] = [$(a).value, $(b).value];
  if (x === "" && y === "") return undefined;
  return [x === "" ? fallback[0] : Number(x), y === "" ? fallback[1] : Number(y)];
}

/** @returns {Partial<GenerateOptions>} */
function xlOptions() {
  if ($("xl-options").hidden) return {};
  const size = /** @type {[number, number]} */ ([Number($("original-h").placeholder), Number($("original-w").placeholder)]);
  /** @type {Partial<GenerateOptions>} */
  const out = {};
  const original = pair("original-h", "original-w", size);
  const crop = pair("crop-top", "crop-left", [0, 0]);
  const target = pair("target-h", "target-w", size);
  if (original) out.originalSize = original;
  if (crop) out.cropsCoordsTopLeft = crop;
  if (target) out.targetSize = target;
  return out;
}

/** @returns {GenerateOptions} */
function formOptions() {
  return {
    ...xlOptions(),
    prompt: $("prompt").value,
    negativePrompt: $("negative").value,
    seed: BigInt($("seed").value || "0"),
    steps: Number($("steps").value),
    guidance: Number($("guidance").value),
    scheduler: $("scheduler").value,
    previewEvery: Number($("preview").value),
  };
}

$("controls").addEventListener("submit", (/** @type {Event} */ e) => {
  e.preventDefault();
  generate(formOptions()).catch(() => {});
});
$("cancel").addEventListener("click", () => running?.abort());
$("download").addEventListener("click", () => {
  const a = document.createElement("a");
  a.href = canvas.toDataURL("image/png");
  a.download = `wsd-seed-${$("seed").value}.png`;
  a.click();
});

ready.then(
  () => { $("generate").disabled = false; },
  (e) => { say(`Could not start: ${e instanceof Error ? e.message : e}`, true); },
);

/** @type {any} */ (window).wsd = {
  ready: ready.then(({ model, adapter }) => ({ adapter, manifest: model.manifest })),
  /**
   * Generate and return what automation needs: RGBA bytes (base64), the PNG, timings, latents on request.
   * @param {GenerateOptions & {seed?: number | string}} options
   */
  async generate(options) {
    const seed = typeof options.seed === "string" ? BigInt(options.seed) : options.seed;
    const result = await generate({ ...options, seed });
    let binary = "";
    for (let i = 0; i < result.rgba.length; i += 0x8000) {
      binary += String.fromCharCode(...result.rgba.subarray(i, i + 0x8000));
    }
    return {
      rgba: btoa(binary),
      png: canvas.toDataURL("image/png"),
      width: result.width,
      height: result.height,
      scheduler: result.scheduler,
      timings: result.timings,
      latents: result.latents ? Array.from(result.latents) : null,
    };
  },
  /** Cancel the running generation (it rejects with a CancelledError). */
  cancel() {
    running?.abort();
  },
  /** GPU bytes the runtime holds now (tvmjs's own accounting). */
  async gpuBytes() {
    const { model } = await ready;
    return /** @type {any} */ (model.session.tvm).lib.webGPUContext.currAllocatedBytes;
  },
};
