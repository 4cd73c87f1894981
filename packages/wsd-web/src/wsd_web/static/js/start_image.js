// A picture file as the editing pipelines take it: decoded by the browser and
// fitted to the build's image size.

/** @typedef {import("./sd_pipeline.js").Image} Image */

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
