// The page's option panels, one per option group a pipeline may take (the
// panel's data-option-group names it): each sets its controls up for a model
// and reads them into generate options.
//
// - micro-conditioning (SDXL): original size, crop and target size.
// - image (image to image): the picture to start from, chosen as a file,
//   pasted or dropped on the panel, fitted to the build's size (scaled to
//   cover it, centred, cropped), and the strength. With a picture set, the
//   page generates with the image-to-image pipeline.
// - mask (inpainting): a mask painted over the picture (mask_panel.js); with
//   a picture and a mask, the page generates with the inpainting pipeline.

import { maskImage, maskPicture, sizeMask, wireMask } from "./mask_panel.js";
import { IMAGE_TO_IMAGE, INPAINTING, PIPELINES } from "./sd_pipeline.js";
import { fitImage } from "./start_image.js";

/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./sd_pipeline.js").GenerateOptions} GenerateOptions */
/** @typedef {import("./sd_pipeline.js").Image} Image */
/** @typedef {GenerateOptions & {task?: string, loras?: import("./lora.js").ActiveLora[]}} PageOptions  loras: default the LoRA panel's. */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

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

/**
 * Empty size fields show the image size.
 * @param {Manifest} m
 */
function sizePlaceholders(m) {
  for (const id of ["original-h", "target-h"]) $(id).placeholder = String(m.image.height);
  for (const id of ["original-w", "target-w"]) $(id).placeholder = String(m.image.width);
}

/** @returns {Partial<PageOptions>} SDXL's micro-conditioning, where set. */
function microConditioning() {
  const size = /** @type {[number, number]} */ ([Number($("original-h").placeholder), Number($("original-w").placeholder)]);
  /** @type {Partial<PageOptions>} */
  const out = {};
  const original = pair("original-h", "original-w", size);
  const crop = pair("crop-top", "crop-left", [0, 0]);
  const target = pair("target-h", "target-w", size);
  if (original) out.originalSize = original;
  if (crop) out.cropsCoordsTopLeft = crop;
  if (target) out.targetSize = target;
  return out;
}

/** The start image panel: the fitted picture (null: none) and the build size it was fitted to. */
const startImage = {
  /** @type {Image | null} */
  image: null,
  /** @type {Blob | null} The picture as given, fitted again when the build's size changes. */
  source: null,
  size: { width: 0, height: 0 },
};

/**
 * Fit `blob` to the build's size and show it; one line of error in the panel when it is not an image.
 * @param {Blob | null} blob  null: clear the picture.
 */
export async function setStartImage(blob) {
  const preview = /** @type {HTMLCanvasElement} */ ($("start-preview"));
  $("start-error").textContent = "";
  startImage.source = blob;
  startImage.image = null;
  maskPicture(null);
  preview.hidden = true;
  $("start-clear").disabled = !blob;
  if (!blob) return;
  const { width, height } = startImage.size;
  try {
    const image = await fitImage(blob, width, height);
    startImage.image = image;
    maskPicture(image);
    preview.width = width;
    preview.height = height;
    /** @type {CanvasRenderingContext2D} */ (preview.getContext("2d")).putImageData(new ImageData(new Uint8ClampedArray(image.rgba), width, height), 0, 0);
    preview.hidden = false;
  } catch (e) {
    startImage.source = null;
    $("start-clear").disabled = true;
    $("start-error").textContent = e instanceof Error ? e.message : String(e);
    throw e;
  }
}

/** @returns {Image | null} The start picture, fitted, as the page holds it now. */
export function startImageNow() {
  return startImage.image;
}

/** @param {Manifest} m */
function setUpStartImage(m) {
  const { width, height } = m.image;
  const changed = width !== startImage.size.width || height !== startImage.size.height;
  startImage.size = { width, height };
  if (changed && startImage.source) setStartImage(startImage.source).catch(() => {});
}

/** @returns {Partial<PageOptions>} Inpainting when a picture and a mask are set. */
function maskOptions() {
  const mask = maskImage();
  return startImage.image && mask ? { task: INPAINTING, mask } : {};
}

/** @param {Manifest} m */
function setUpMask(m) {
  sizeMask(m.image.width, m.image.height);
}

/** @returns {Partial<PageOptions>} Image to image when a picture is set. */
function startImageOptions() {
  if (!startImage.image) return {};
  return { task: IMAGE_TO_IMAGE, image: startImage.image, strength: Number($("strength").value) };
}

/** Wire the start image panel's file input, paste, drop and clear, and the mask painter. */
export function wireStartImage() {
  wireMask();
  const panel = $("start-image");
  const take = (/** @type {Blob | null | undefined} */ blob) => {
    if (blob) setStartImage(blob).catch(() => {});
  };
  $("start-file").addEventListener("change", () => take($("start-file").files?.[0]));
  $("start-clear").addEventListener("click", () => {
    $("start-file").value = "";
    setStartImage(null).catch(() => {});
  });
  document.addEventListener("paste", (/** @type {ClipboardEvent} */ e) => {
    const file = Array.from(e.clipboardData?.files ?? []).find((f) => f.type.startsWith("image/"));
    if (file && !panel.hidden) take(file);
  });
  panel.addEventListener("dragover", (/** @type {DragEvent} */ e) => e.preventDefault());
  panel.addEventListener("drop", (/** @type {DragEvent} */ e) => {
    e.preventDefault();
    take(e.dataTransfer?.files?.[0]);
  });
}

/**
 * What the page does for each option group.
 * @type {Readonly<Record<string, {setUp(m: Manifest): void, read(): Partial<PageOptions>}>>}
 */
export const OPTION_GROUPS = Object.freeze({
  "micro-conditioning": { setUp: sizePlaceholders, read: microConditioning },
  image: { setUp: setUpStartImage, read: startImageOptions },
  mask: { setUp: setUpMask, read: maskOptions },
});

/**
 * The option groups a build's pipelines take: those of each task the build has.
 * @param {Manifest} m
 * @returns {string[]}
 */
export function optionGroupsOf(m) {
  const tasks = Object.hasOwn(PIPELINES, m.kind) ? Object.entries(PIPELINES[m.kind]) : [];
  return [...new Set(tasks.filter(([task]) => Object.hasOwn(m.tasks, task)).flatMap(([, cls]) => cls.optionGroups))];
}
