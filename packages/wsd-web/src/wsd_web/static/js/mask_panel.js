// The inpainting mask, painted over the start image: a brush (its size in the
// image's pixels; erase paints the picture back), clear, or a mask file fitted
// like the picture (white: repaint). The canvas shows the picture with the
// repainted part tinted. With a picture and a non-empty mask, the page
// generates with the inpainting pipeline.

import { fitImage } from "./start_image.js";

/** @typedef {import("./sd_pipeline.js").Image} Image */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

const state = {
  /** @type {Uint8Array} 1 where the picture is repainted. */
  bits: new Uint8Array(0),
  width: 0,
  height: 0,
  /** @type {Image | null} The picture the mask is painted over. */
  picture: null,
};

/**
 * The mask's size follows the build's image (a new size clears it).
 * @param {number} width
 * @param {number} height
 */
export function sizeMask(width, height) {
  if (width === state.width && height === state.height) return;
  Object.assign(state, { width, height, bits: new Uint8Array(width * height) });
  drawMask();
}

/**
 * The picture to paint over (null: none; the mask is kept).
 * @param {Image | null} picture
 */
export function maskPicture(picture) {
  state.picture = picture;
  drawMask();
}

/** Show the picture with the masked part tinted. */
function drawMask() {
  const canvas = /** @type {HTMLCanvasElement | null} */ ($("mask-canvas"));
  if (!canvas || state.width === 0) return;
  canvas.width = state.width;
  canvas.height = state.height;
  const out = new Uint8ClampedArray(state.width * state.height * 4);
  for (let i = 0; i < state.bits.length; i++) {
    const base = state.picture ? state.picture.rgba.subarray(4 * i, 4 * i + 3) : [96, 96, 96];
    const tint = state.bits[i] ? [255, 40, 40] : base;
    for (let c = 0; c < 3; c++) out[4 * i + c] = state.bits[i] ? (base[c] + tint[c]) / 2 : base[c];
    out[4 * i + 3] = 255;
  }
  /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d")).putImageData(new ImageData(out, state.width, state.height), 0, 0);
}

/**
 * Paint (or erase) a disc of the brush's diameter at image coordinates x, y.
 * @param {number} x
 * @param {number} y
 */
function paint(x, y) {
  const radius = Math.max(Number($("brush-size").value) || 1, 1) / 2;
  const value = $("brush-erase").checked ? 0 : 1;
  const [x0, x1] = [Math.max(Math.floor(x - radius), 0), Math.min(Math.ceil(x + radius), state.width - 1)];
  const [y0, y1] = [Math.max(Math.floor(y - radius), 0), Math.min(Math.ceil(y + radius), state.height - 1)];
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      if ((px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= radius * radius) state.bits[py * state.width + px] = value;
    }
  }
}

/**
 * The mask as RGBA (white: repaint), or null when nothing is masked.
 * @returns {Image | null}
 */
export function maskImage() {
  if (!state.bits.includes(1)) return null;
  const rgba = new Uint8ClampedArray(state.bits.length * 4);
  for (let i = 0; i < state.bits.length; i++) rgba.fill(state.bits[i] ? 255 : 0, 4 * i, 4 * i + 3).fill(255, 4 * i + 3, 4 * i + 4);
  return { rgba, width: state.width, height: state.height };
}

/**
 * Take a mask file: fitted like the picture, white (grayscale at least half) repainted.
 * One line of error in the panel when it is not an image; the mask is left as it was.
 * @param {Blob} blob
 */
export async function setMaskFile(blob) {
  $("mask-error").textContent = "";
  try {
    const { rgba } = await fitImage(blob, state.width, state.height);
    for (let i = 0; i < state.bits.length; i++) {
      const luma = (rgba[4 * i] * 19595 + rgba[4 * i + 1] * 38470 + rgba[4 * i + 2] * 7471 + 0x8000) >> 16;
      state.bits[i] = luma >= 128 ? 1 : 0;
    }
    drawMask();
  } catch (e) {
    $("mask-error").textContent = (e instanceof Error ? e.message : String(e)).replace("start image", "mask");
  }
}

/** Wire the brush (pointer drags on the canvas), clear and the mask file input. */
export function wireMask() {
  const canvas = /** @type {HTMLCanvasElement} */ ($("mask-canvas"));
  let down = false;
  const at = (/** @type {PointerEvent} */ e) => {
    const box = canvas.getBoundingClientRect();
    paint((e.clientX - box.left) * state.width / box.width, (e.clientY - box.top) * state.height / box.height);
    drawMask();
  };
  canvas.addEventListener("pointerdown", (/** @type {PointerEvent} */ e) => {
    down = true;
    canvas.setPointerCapture?.(e.pointerId);
    at(e);
  });
  canvas.addEventListener("pointermove", (/** @type {PointerEvent} */ e) => { if (down) at(e); });
  for (const end of ["pointerup", "pointercancel"]) canvas.addEventListener(end, () => { down = false; });
  $("mask-clear").addEventListener("click", () => {
    state.bits.fill(0);
    drawMask();
  });
  $("mask-file").addEventListener("change", () => {
    const file = $("mask-file").files?.[0];
    if (file) setMaskFile(file).catch(() => {});
  });
}
