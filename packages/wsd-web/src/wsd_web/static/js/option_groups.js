// The page's option panels, one per option group a pipeline may take (the
// panel's data-option-group names it): each sets its controls up for a model
// and reads them into generate options.
//
// - micro-conditioning (SDXL): original size, crop and target size.
// - image (image to image): the picture to start from, chosen as a file,
//   pasted or dropped on the panel, fitted to the build's size (scaled to
//   cover it, centred, cropped), and the strength. With a picture set, the
//   page generates with the image-to-image pipeline.

import { IMAGE_TO_IMAGE, PIPELINES } from "./sd_pipeline.js";

/** @typedef {import("./sd_model.js").Manifest} Manifest */
/** @typedef {import("./sd_pipeline.js").GenerateOptions} GenerateOptions */
/** @typedef {import("./sd_pipeline.js").Image} Image */
/** @typedef {GenerateOptions & {task?: string}} PageOptions */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/**
 * The picture in `blob` (a file's bytes), decoded and fitted to width x height:
 * scaled to cover it, centred and cropped. A picture already that size is
 * taken pixel for pixel. One line of error when it is not an image.
 * @param {Blob} blob
 * @param {number} width
 * @param {number} height
 * @returns {Promise<Image>}
 */
export async function fitImage(blob, width, height) {
  /** @type {ImageBitmap} */
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch {
    throw new Error(`the start image could not be decoded (${blob.type || "unknown type"}, ${blob.size} bytes): use a PNG, JPEG or WebP file`);
  }
  try {
    const canvas = new OffscreenCanvas(width, height);
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext("2d", { willReadFrequently: true }));
    const scale = Math.max(width / bitmap.width, height / bitmap.height);
    const [w, h] = [bitmap.width * scale, bitmap.height * scale];
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, (width - w) / 2, (height - h) / 2, w, h);
    return { rgba: ctx.getImageData(0, 0, width, height).data, width, height };
  } finally {
    bitmap.close();
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
  preview.hidden = true;
  $("start-clear").disabled = !blob;
  if (!blob) return;
  const { width, height } = startImage.size;
  try {
    const image = await fitImage(blob, width, height);
    startImage.image = image;
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

/** @param {Manifest} m */
function setUpStartImage(m) {
  const { width, height } = m.image;
  const changed = width !== startImage.size.width || height !== startImage.size.height;
  startImage.size = { width, height };
  if (changed && startImage.source) setStartImage(startImage.source).catch(() => {});
}

/** @returns {Partial<PageOptions>} Image to image when a picture is set. */
function startImageOptions() {
  if (!startImage.image) return {};
  return { task: IMAGE_TO_IMAGE, image: startImage.image, strength: Number($("strength").value) };
}

/** Wire the start image panel's file input, paste, drop and clear. */
export function wireStartImage() {
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
