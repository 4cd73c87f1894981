// The page: loads the build at ?model=DIR (default "model/") with the first of
// its kernel paths this GPU runs (or the one ?kernel-path=NAME names; ?vae-tiles=auto|on|off
// sets the VAE decode, whole or in tiles, ?offload=1|0 sequential offload and ?memory-budget=GIB
// the GPU memory budget, which a build over it is refused by before its download), wires the controls
// to the pipeline of its kind (from the manifest, through the pipeline
// registry), shows the option panels that pipeline takes, draws previews and
// the result, and shows timings and what is stored.
// Every file is verified against the manifest's sha384 and kept in this
// browser's cache by content hash (delivery.js), so a reload downloads nothing;
// failures (network, integrity, a lost GPU) say what happened and offer a retry
// that keeps the page usable. `window.wsd` is the same app for automation.

import { checkBuildStamp } from "./build_stamp.js";
import {
  DownloadCancelled, Downloader, IntegrityError, formatBytes, formatSeconds, openContentStore,
} from "./delivery.js";
import { clearLoras, lorasNow, wireLoraPanel } from "./lora_panel.js";
import { MANIFEST_CACHE, loadManifest } from "./manifest_source.js";
import { maskImage } from "./mask_panel.js";
import { OPTION_GROUPS, optionGroupsOf, startImageNow, wireStartImage } from "./option_groups.js";
import { parametersText, withTextChunk } from "./png_text.js";
import { applySettings, askedSettings, memoryBudget, memorySummary, settingOptions } from "./page_options.js";
import { SDModel, describeKernelPath, kernelPaths, parseManifest } from "./sd_model.js";
import {
  CancelledError, TEXT_TO_IMAGE, availableSchedulers, createPipeline, defaultSchedulerName,
} from "./sd_pipeline.js";
import { fitImage } from "./start_image.js";
import { showTimings } from "./timings_table.js";
import { requestGPU } from "./webgpu_device.js";

/** @typedef {import("./sd_pipeline.js").Generation} Generation */
/** @typedef {import("./sd_pipeline.js").GenerateOptions} GenerateOptions */
/** @typedef {import("./option_groups.js").PageOptions} PageOptions */
/** @typedef {{base64: string, type?: string, name?: string, scale?: number}} FileOption  A file's bytes for automation. */
/** @typedef {import("./delivery.js").DownloadProgress} DownloadProgress */
/** @typedef {import("./delivery.js").ContentStore} ContentStore */
/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./sd_model.js").KernelPath} KernelPath */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const status = /** @type {HTMLElement} */ ($("status"));
const progress = /** @type {HTMLProgressElement} */ ($("progress"));
const canvas = /** @type {HTMLCanvasElement} */ ($("canvas"));
const query = new URLSearchParams(location.search);
const base = new URL(query.get("model") ?? "model/", location.href);
/** The kernel path asked for (?kernel-path=NAME); null: the first the GPU runs. */
const wantedKernelPath = query.get("kernel-path") || null;
/** The VAE decode, sequential offload and memory budget asked for (?vae-tiles=, ?offload=, ?memory-budget=). */
const asked = askedSettings(query);
/** The controls of those settings (page_options.js). */
const settings = { vaeTiles: $("vae-tiles"), offload: $("offload"), memoryBudget: $("memory-budget") };

/**
 * @typedef {object} Loaded
 * @property {SDModel} model
 * @property {(task: string) => Promise<import("./sd_pipeline.js").SD15Pipeline>} pipelineFor  The pipeline of a
 *   task (the default task's made at load, the others when first used).
 * @property {string} defaultTask  Text to image, or the build's first task where it has none (an
 *   inpainting checkpoint's build).
 * @property {import("./webgpu_device.js").GPUInfo} gpu
 */

/**
 * What the last load did, for the page and for automation.
 * @typedef {object} LoadReport
 * @property {boolean} offline  The manifest came from this browser's copy (no network).
 * @property {string[]} uploadedFiles  Weight files whose tensors reached the GPU.
 * @property {import("./delivery.js").DownloadStats | null} stats
 * @property {string[]} warnings
 * @property {string | null} kernelPath  The kernel path chosen, once it is.
 * @property {import("./sd_model.js").PassedOver[]} passedOver  Better paths not taken, and why.
 */

const state = {
  /** @type {Promise<Loaded>} */
  ready: Promise.reject(new Error("not started")),
  /** @type {Loaded | null} */
  current: null,
  /** @type {AbortController | null} */
  loading: null,
  /** @type {AbortController | null} */
  running: null,
  /** @type {string | null} Why the GPU device was lost, while it is. */
  lost: null,
  /** @type {string | null} The last generation's parameters, for the PNG it is saved as. */
  parameters: null,
  /** @type {LoadReport} */
  report: { offline: false, uploadedFiles: [], stats: null, warnings: [], kernelPath: null, passedOver: [] },
};
/** Devices this page destroyed itself (their loss is expected). @type {WeakSet<GPUDevice>} */
const retired = new WeakSet();
/** @type {Promise<ContentStore>} */
const store = openContentStore();

/** @param {string} text @param {boolean} [error] */
function say(text, error = false) {
  status.textContent = text;
  status.className = error ? "error" : "";
}

/** @param {string} text */
function warn(text) {
  state.report.warnings.push(text);
  $("warning").textContent = state.report.warnings.join("\n");
  $("warning").hidden = false;
}

/** @param {DownloadProgress} p */
function showProgress(p) {
  progress.value = p.totalBytes ? p.loadedBytes / p.totalBytes : 0;
  const cached = p.fromCacheBytes ? ` (${formatBytes(p.fromCacheBytes)} from this browser's cache)` : "";
  const left = p.secondsLeft ? `, ${formatSeconds(p.secondsLeft)} left` : "";
  say(`Loading the model: ${formatBytes(p.loadedBytes)} of ${formatBytes(p.totalBytes)}${cached}${left}`);
}

/**
 * Warn when the browser will not keep what this build still has to download
 * (on the kernel path chosen: the other paths' libraries are never fetched).
 * @param {Manifest} manifest
 * @param {ContentStore} content
 * @param {KernelPath} path
 */
async function checkQuota(manifest, content, path) {
  if (!content.persistent) {
    warn("This browser gives the page no persistent cache (private window?): the model downloads on every visit.");
    return;
  }
  const unused = new Set(kernelPaths(manifest).map((p) => p.library).filter((l) => l !== path.library));
  const stored = new Set((await content.entries()).map((e) => e.integrity));
  const needed = Object.entries(manifest.files).filter(([file, f]) => !unused.has(file) && !stored.has(f.integrity))
    .reduce((n, [, f]) => n + f.bytes, 0);
  const estimate = await navigator.storage?.estimate?.().catch(() => undefined);
  if (!estimate?.quota || needed === 0) return;
  const free = estimate.quota - (estimate.usage ?? 0);
  if (free < needed) {
    warn(
      `This browser allows ${formatBytes(free)} more storage, the model needs ${formatBytes(needed)}: it will run, ` +
      "but download again next time. Free disk space, or clear cached models under Storage.",
    );
  }
}

/**
 * A library that failed its checksum: if it is a whole library of another build (a stale
 * manifest, a half-finished deployment), throw the error that says so.
 * @param {string} path
 * @param {Manifest} manifest
 * @param {AbortSignal} signal
 */
async function explainLibrary(path, manifest, signal) {
  const response = await fetch(new URL(path, base), { cache: "no-store", signal }).catch(() => null);
  if (response?.ok) checkBuildStamp(path, new Uint8Array(await response.arrayBuffer()), manifest);
}

/**
 * Fetch, verify and put on the GPU everything the page needs.
 * @param {AbortSignal} signal
 * @returns {Promise<Loaded>}
 */
async function load(signal) {
  /** @type {LoadReport} */
  const report = { offline: false, uploadedFiles: [], stats: null, warnings: [], kernelPath: null, passedOver: [] };
  state.report = report;
  $("warning").hidden = true;
  if (asked.error !== null) throw new Error(asked.error);
  const gpu = await requestGPU(navigator.gpu);
  gpu.device.lost.then((info) => lost(gpu.device, info));
  try {
    say("Fetching the manifest…");
    const { json, offline } = await loadManifest(new URL("manifest.json", base), { signal });
    report.offline = offline;
    if (offline) warn("The server cannot be reached: running the copy of the model stored in this browser.");
    const manifest = parseManifest(json);
    const content = await store;
    /** The chosen kernel path's library, the only one fetched. @type {string | null} */
    let library = null;
    const downloader = new Downloader({
      baseUrl: base,
      files: manifest.files,
      store: content,
      signal,
      onProgress: showProgress,
      onWarning: warn,
      // A library of another build is named as such, not as a checksum mismatch.
      inspect: (path, bytes) => { if (path === library) checkBuildStamp(path, bytes, manifest); },
    });
    report.stats = downloader.stats;
    // The small files first: a missing tokenizer fails before the weights download.
    const tokenizers = [manifest.tokenizer, manifest.tokenizer_2].flatMap((t) => (t ? [t.file] : []));
    for (const file of tokenizers) await downloader.get(file);
    /** @type {import("./sd_model.js").FileSource} */
    const files = {
      get: (path) => downloader.get(path).catch(async (e) => {
        if (path === library && e instanceof IntegrityError && e.source === "network") {
          await explainLibrary(path, manifest, signal);
        }
        throw e;
      }),
      getAll: (paths, consume) => downloader.getAll(paths, consume),
    };
    const model = await SDModel.load({
      tvmjs: /** @type {any} */ (window).tvmjs, gpu, manifest, files, kernelPath: wantedKernelPath,
      memoryBudget: memoryBudget(settings),
      onKernelPath: async ({ path, passedOver }) => {
        [library, report.kernelPath, report.passedOver] = [path.library, path.name, passedOver];
        await checkQuota(manifest, content, path);
      },
      onUpload: (path) => report.uploadedFiles.push(path),
    });
    try {
      const make = (/** @type {string} */ task) =>
        createPipeline(model, /** @type {any} */ (window).tokenizers, (path) => downloader.get(path), task);
      const tasks = Object.keys(manifest.tasks);
      const defaultTask = tasks.includes(TEXT_TO_IMAGE) ? TEXT_TO_IMAGE : tasks[0];
      /** @type {Map<string, Promise<import("./sd_pipeline.js").SD15Pipeline>>} */
      const pipelines = new Map([[defaultTask, make(defaultTask)]]);
      await pipelines.get(defaultTask);
      const pipelineFor = (/** @type {string} */ task) => {
        if (!pipelines.has(task)) pipelines.set(task, make(task));
        return /** @type {Promise<import("./sd_pipeline.js").SD15Pipeline>} */ (pipelines.get(task));
      };
      if (content.persistent) navigator.storage?.persist?.().catch(() => false);
      return { model, pipelineFor, defaultTask, gpu };
    } catch (e) {
      retire(model, gpu.device);
      throw e;
    }
  } catch (e) {
    retired.add(gpu.device);
    gpu.device.destroy();
    throw e;
  }
}

/**
 * Release a model and the device it runs on (tvmjs destroys the device with it).
 * @param {SDModel} model
 * @param {GPUDevice} device
 */
function retire(model, device) {
  retired.add(device);
  try {
    model.dispose();
  } catch (e) {
    // A lost device leaves the runtime half torn down; what is left is unreachable anyway.
    console.warn("releasing the previous model:", e);
  }
}

/**
 * The GPU device went away (driver reset, GPU removed, browser reclaimed it).
 * @param {GPUDevice} device
 * @param {GPUDeviceLostInfo} info
 */
function lost(device, info) {
  if (retired.has(device)) return;
  state.lost = `${info.reason}${info.message ? `: ${info.message}` : ""}`;
  state.running?.abort();
  $("generate").disabled = true;
  sayLost();
}

/** Tell the user the device is gone and offer to re-initialise. */
function sayLost() {
  say(
    `The GPU device was lost (${state.lost}). Re-initialise to continue: the model reloads from this ` +
    "browser's cache, without downloading it again.",
    true,
  );
  $("retry").textContent = "Re-initialise";
  $("recovery").hidden = false;
}

/** @param {unknown} e */
function failed(e) {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof DownloadCancelled) {
    const kept = state.report.stats ? ` ${formatBytes(state.report.stats.networkBytes)} downloaded so far are kept;` : "";
    say(`Loading cancelled.${kept} Retry resumes from what is stored.`, true);
  } else {
    say(`Could not start: ${message}`, true);
  }
  $("retry").textContent = "Retry";
  $("recovery").hidden = false;
}

/** Load (again): first load, retry after a failure, re-initialise after a lost device. */
function start() {
  if (state.current) {
    retire(state.current.model, state.current.gpu.device);
    state.current = null;
  }
  state.lost = null;
  state.loading = new AbortController();
  $("recovery").hidden = true;
  $("generate").disabled = true;
  $("cancel").disabled = false;
  progress.value = 0;
  const ready = load(state.loading.signal).then(
    (loaded) => {
      state.current = loaded;
      setUp(loaded);
      return loaded;
    },
    (e) => {
      failed(e);
      throw e;
    },
  ).finally(() => {
    state.loading = null;
    $("cancel").disabled = true;
    refreshStorage();
  });
  ready.catch(() => {});
  state.ready = ready;
  return ready;
}

/** @returns {HTMLElement[]} The panels of option groups (data-option-group), shown or not. */
function optionPanels() {
  return Array.from(document.querySelectorAll("[data-option-group]"), (e) => /** @type {HTMLElement} */ (e));
}

/**
 * Show the option panels of the groups the build's pipelines take, set up for the model.
 * @param {Manifest} m
 */
function showOptionGroups(m) {
  const groups = optionGroupsOf(m);
  for (const panel of optionPanels()) {
    const group = String(panel.dataset.optionGroup);
    panel.hidden = !groups.includes(group);
    if (!panel.hidden) OPTION_GROUPS[group].setUp(m);
  }
}

/** @param {Loaded} loaded */
function setUp({ model, gpu }) {
  const m = model.manifest;
  showOptionGroups(m);
  clearLoras();
  const select = /** @type {HTMLSelectElement} */ ($("scheduler"));
  const chosen = select.value;
  select.replaceChildren();
  const preferred = chosen || defaultSchedulerName(m.scheduler);
  for (const name of availableSchedulers(m.scheduler)) {
    select.add(new Option(name, name, false, name === preferred));
  }
  $("vae-tiles").querySelector("[value=on]").disabled = !m.vae_tiling; // a build without vae_tiling decodes whole
  $("model-info").textContent =
    `${m.model.source} (${m.kind}, ${m.model.precision}, ${m.image.width}×${m.image.height}) on ${gpu.adapter}, ` +
    describeKernelPath(model.kernelPath, model.passedOver);
  progress.value = 1;
  $("generate").disabled = false;
  say(state.report.offline ? "Ready (offline)." : "Ready.");
}

/** Show what this browser stores for wsd, and how much room it has. */
async function refreshStorage() {
  const content = await store;
  const entries = await content.entries().catch(() => []);
  const files = state.current?.model.manifest.files ?? {};
  const mine = new Set(Object.values(files).map((f) => f.integrity));
  const total = entries.reduce((n, e) => n + e.bytes, 0);
  const own = entries.filter((e) => mine.has(e.integrity)).reduce((n, e) => n + e.bytes, 0);
  const parts = [`${entries.length} files, ${formatBytes(total)} stored (${formatBytes(own)} of them for this model)`];
  if (!content.persistent) parts.push("this browser gives the page no persistent cache");
  const estimate = await navigator.storage?.estimate?.().catch(() => undefined);
  if (estimate?.quota) parts.push(`the site uses ${formatBytes(estimate.usage ?? 0)} of ${formatBytes(estimate.quota)} allowed`);
  const persisted = await navigator.storage?.persisted?.().catch(() => false);
  parts.push(persisted ? "kept until you clear it" : "the browser may evict it when space runs low");
  $("storage-summary").textContent = `${parts.join("; ")}.`;
  const body = $("storage-files").tBodies[0];
  body.replaceChildren();
  for (const e of [...entries].sort((a, b) => b.bytes - a.bytes)) {
    const row = body.insertRow();
    row.insertCell().textContent = e.file;
    const size = row.insertCell();
    size.className = "num";
    size.textContent = formatBytes(e.bytes);
    row.insertCell().textContent = mine.has(e.integrity) ? "this model" : "another build";
  }
  return { entries, persistent: content.persistent, persisted: Boolean(persisted) };
}

async function clearStorage() {
  const content = await store;
  const before = (await content.entries()).reduce((n, e) => n + e.bytes, 0);
  await content.clear();
  await globalThis.caches?.delete(MANIFEST_CACHE).catch(() => false);
  await refreshStorage();
  say(`Cleared ${formatBytes(before)}: the next load downloads the model again.`);
}

/** @param {import("./sd_pipeline.js").Image} img */
function draw(img) {
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  ctx.putImageData(new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height), 0, 0);
}

/**
 * Generate with the pipeline of the options' task (default: text to image) and draw the result.
 * @param {PageOptions} options
 * @returns {Promise<Generation>}
 */
async function generate({ task, loras, ...options }) {
  const loaded = await state.ready;
  const pipeline = await loaded.pipelineFor(task ?? loaded.defaultTask);
  state.parameters = null;
  if (state.lost) throw new Error(`the GPU device was lost (${state.lost}): re-initialise first`);
  if (state.running) throw new Error("a generation is already running: wait for it or cancel it");
  state.running = new AbortController();
  $("generate").disabled = true;
  $("cancel").disabled = false;
  progress.value = 0;
  try {
    say("Merging LoRAs…");
    await loaded.model.loras.set(loras ?? lorasNow());
    const result = await pipeline.generate({ ...options, signal: state.running.signal }, {
      onStep: ({ step, total, ms }) => {
        progress.value = step / total;
        say(`Step ${step} of ${total} (${ms.toFixed(0)} ms)`);
      },
      onPreview: draw,
    });
    draw(result);
    state.parameters = parametersText(result, loaded.model.manifest, task ?? loaded.defaultTask, loaded.model.loras.describe());
    showTimings($("timings"), result.timings, result.vaeTiles);
    say(`Done in ${(result.timings.totalMs / 1000).toFixed(2)} s with ${result.scheduler}; ${memorySummary(result)}.`);
    $("download").disabled = false;
    return result;
  } catch (e) {
    if (state.lost) {
      sayLost(); // a step that finished after the loss may have overwritten the status
      throw new Error(`the GPU device was lost during the generation (${state.lost}): re-initialise and generate again`, { cause: e });
    }
    say(e instanceof CancelledError ? "Cancelled." : String(e), !(e instanceof CancelledError));
    throw e;
  } finally {
    state.running = null;
    $("generate").disabled = Boolean(state.lost);
    $("cancel").disabled = true;
  }
}

/** @returns {Partial<PageOptions>} The options of the panels shown. */
function groupOptions() {
  const shown = optionPanels().filter((panel) => !panel.hidden);
  return Object.assign({}, ...shown.map((panel) => OPTION_GROUPS[String(panel.dataset.optionGroup)].read()));
}

/** @returns {PageOptions} */
function formOptions() {
  return {
    ...groupOptions(),
    prompt: $("prompt").value,
    negativePrompt: $("negative").value,
    seed: BigInt($("seed").value || "0"),
    steps: Number($("steps").value),
    guidance: Number($("guidance").value),
    scheduler: $("scheduler").value,
    previewEvery: Number($("preview").value),
    ...settingOptions(settings),
  };
}

$("controls").addEventListener("submit", (/** @type {Event} */ e) => {
  e.preventDefault();
  generate(formOptions()).catch(() => {});
});
$("cancel").addEventListener("click", () => (state.running ?? state.loading)?.abort());
$("retry").addEventListener("click", () => { start(); });
$("storage-clear").addEventListener("click", () => { clearStorage().catch((e) => say(String(e), true)); });
$("storage").addEventListener("toggle", () => { refreshStorage().catch(() => {}); });
/** The shown image as PNG bytes, with the last generation's parameters (png_text.js). */
async function imagePng() {
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const png = new Uint8Array(await /** @type {Blob} */ (blob).arrayBuffer());
  return state.parameters ? withTextChunk(png, "parameters", state.parameters) : png;
}

$("download").addEventListener("click", async () => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([new Uint8Array(await imagePng())], { type: "image/png" }));
  a.download = `wsd-seed-${$("seed").value}.png`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
});

applySettings(settings, asked);
wireStartImage();
wireLoraPanel(() => state.ready.then((l) => l.model));
// The app shell offline (sw.js); a page that cannot have a service worker still works.
navigator.serviceWorker?.register("sw.js").catch(() => {});
start();

/** @type {any} */ (window).wsd = {
  /**
   * The current load: resolves with the adapter, the manifest, the kernel path's name and the
   * better paths passed over (with why), or rejects with why it failed.
   */
  get ready() {
    return state.ready.then(({ model, gpu }) => ({
      adapter: gpu.adapter, manifest: model.manifest, kernelPath: model.kernelPath.name, passedOver: model.passedOver,
    }));
  },
  /**
   * Generate and return what automation needs: RGBA bytes (base64), the PNG, timings, the VAE
   * tiles, sequential offload, each stage's peak GPU bytes, the bytes the build reckons, latents on
   * request. vaeTiling, offload and memoryBudget default to the page's settings (page_options.js).
   * Image to image: task "image-to-image" and `imageFile`, a picture file's bytes (base64) and MIME
   * type, fitted to the build's size as the page fits a chosen file; inpainting: task "inpainting"
   * and `maskFile` too (white: repaint). `loraFiles`: LoRA files (name, scale) in place of the panel's.
   * @param {PageOptions & {seed?: number | string, imageFile?: FileOption, maskFile?: FileOption, loraFiles?: FileOption[]}} options
   */
  async generate({ imageFile, maskFile, loraFiles, ...options }) {
    const seed = typeof options.seed === "string" ? BigInt(options.seed) : options.seed;
    const { model } = await state.ready;
    const { image: { width, height } } = model.manifest;
    const blob = (/** @type {FileOption} */ file) => new Blob([Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))], { type: file.type ?? "" });
    const fit = (/** @type {FileOption} */ file) => fitImage(blob(file), width, height);
    if (loraFiles) {
      options.loras = await Promise.all(loraFiles.map(async (f) => ({
        lora: model.readLora(new Uint8Array(await blob(f).arrayBuffer()), f.name ?? "LoRA"), scale: f.scale ?? 1 })));
    }
    if (imageFile) options.image = await fit(imageFile);
    if (maskFile) options.mask = await fit(maskFile);
    const result = await generate({ ...settingOptions(settings), ...options, seed });
    let binary = "";
    for (let i = 0; i < result.rgba.length; i += 0x8000) {
      binary += String.fromCharCode(...result.rgba.subarray(i, i + 0x8000));
    }
    return {
      rgba: btoa(binary),
      png: `data:image/png;base64,${btoa(Array.from(await imagePng(), (b) => String.fromCharCode(b)).join(""))}`,
      parameters: state.parameters,
      width: result.width,
      height: result.height,
      scheduler: result.scheduler,
      timings: result.timings,
      vaeTiles: result.vaeTiles,
      offload: result.offload,
      peakBytes: result.peakBytes,
      memoryNeedBytes: result.memoryNeedBytes,
      latents: result.latents ? Array.from(result.latents) : null,
    };
  },
  /** The start picture and the mask the page holds now (RGBA, base64; null where none). */
  editInputs() {
    const encode = (/** @type {import("./sd_pipeline.js").Image | null} */ img) =>
      img ? btoa(Array.from(img.rgba, (b) => String.fromCharCode(b)).join("")) : null;
    return { image: encode(startImageNow()), mask: encode(maskImage()) };
  },
  /** Cancel the running generation (it rejects with a CancelledError) or the loading. */
  cancel() {
    (state.running ?? state.loading)?.abort();
  },
  /** Load again (what the Retry / Re-initialise button does); resolves like `ready`. */
  reinitialize() {
    start();
    return this.ready;
  },
  /** What the last load did: offline or not, files uploaded to the GPU, download statistics, warnings, kernel path. */
  loadReport() {
    return state.report;
  },
  /** What this browser stores for wsd (refreshes the Storage panel). */
  storage: refreshStorage,
  /** Delete every stored model file. */
  clearStorage,
  /** The page's current GPU device (automation can destroy it to exercise device loss). */
  async gpuDevice() {
    return (await state.ready).gpu.device;
  },
  /** GPU bytes the runtime holds now (tvmjs's own accounting). */
  async gpuBytes() {
    const { model } = await state.ready;
    return model.session.allocatedBytes();
  },
};
