// The pipelines this app runs, by the manifest's model kind and task: the one
// table every part of the app asks (the manifest check, createPipeline, the
// page's option controls), as mlc-llm's MODELS table. A new kind or task is a
// pipeline class and one entry here; the manifest lists the functions the
// task's pipeline calls.

import { ClipTokenizer } from "../clip_tokenizer.js";
import { SD15ImageToImage, SDXLImageToImage } from "./image_to_image.js";
import { SD15Inpainting, SDXLInpainting } from "./inpainting.js";
import { SD15Pipeline } from "./stable_diffusion.js";
import { SDXLPipeline } from "./stable_diffusion_xl.js";

/** @typedef {import("../sd_model.js").SDModel} SDModel */
/** @typedef {import("../sd_model.js").Manifest} Manifest */
/** @typedef {import("../sd_model.js").TokenizerEntry} TokenizerEntry */

/**
 * A pipeline class: made from the model and its tokenizers (one per entry of
 * `tokenizers`, in that order), with what it needs of the manifest and the
 * option groups it takes.
 * @typedef {{
 *   new (model: SDModel, ...tokenizers: any[]): SD15Pipeline,
 *   tokenizers: ReadonlyArray<"tokenizer" | "tokenizer_2">,
 *   manifestFields: ReadonlyArray<keyof Manifest>,
 *   optionGroups: ReadonlyArray<string>,
 *   encodesImage: boolean,
 * }} PipelineClass
 */

/** The task the page runs by default. */
export const TEXT_TO_IMAGE = "text-to-image";
/** Start from an image (the build's vae_encode), with a strength. */
export const IMAGE_TO_IMAGE = "image-to-image";
/** Repaint the masked part of an image. */
export const INPAINTING = "inpainting";

/** @type {Readonly<Record<string, Readonly<Record<string, PipelineClass>>>>} */
export const PIPELINES = Object.freeze({
  sd15: Object.freeze({ [TEXT_TO_IMAGE]: SD15Pipeline, [IMAGE_TO_IMAGE]: SD15ImageToImage, [INPAINTING]: SD15Inpainting }),
  sdxl: Object.freeze({ [TEXT_TO_IMAGE]: SDXLPipeline, [IMAGE_TO_IMAGE]: SDXLImageToImage, [INPAINTING]: SDXLInpainting }),
});

/**
 * Names as a sentence lists them: "a", "a and b", "a, b and c".
 * @param {string[]} names
 */
export function listing(names) {
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}` : names.join("");
}

/**
 * Every pipeline class of a kind (none for a kind the app does not run).
 * @param {string} kind
 * @returns {PipelineClass[]}
 */
export function pipelinesOf(kind) {
  return Object.hasOwn(PIPELINES, kind) ? Object.values(PIPELINES[kind]) : [];
}

/**
 * The pipeline class for a kind and task, or an error naming what the app runs.
 * @param {string} kind
 * @param {string} [task]
 * @returns {PipelineClass}
 */
export function pipelineClass(kind, task = TEXT_TO_IMAGE) {
  const byTask = Object.hasOwn(PIPELINES, kind) ? PIPELINES[kind] : {};
  if (!Object.hasOwn(byTask, task)) {
    const runs = Object.entries(PIPELINES).flatMap(([k, tasks]) => Object.keys(tasks).map((t) => `${k} ${t}`));
    throw new Error(`this app has no ${task} pipeline for ${kind} builds; it runs ${listing(runs)}`);
  }
  return byTask[task];
}

/**
 * The pipeline of a loaded model for a task, by its manifest's kind, with its tokenizer(s).
 * @param {SDModel} model
 * @param {any} tokenizers  The vendored web-tokenizers module.
 * @param {(path: string) => Promise<Uint8Array>} fetchBytes  Files of the model directory.
 * @param {string} [task]
 * @returns {Promise<SD15Pipeline>}
 */
export async function createPipeline(model, tokenizers, fetchBytes, task = TEXT_TO_IMAGE) {
  const m = model.manifest;
  const Pipeline = pipelineClass(m.kind, task);
  if (!Object.hasOwn(m.tasks, task)) {
    throw new Error(`this build has no ${task} functions (it has ${listing(Object.keys(m.tasks))}): rebuild it with wsd-compile`);
  }
  /** @param {TokenizerEntry} t */
  const load = async (t) => ClipTokenizer.create(tokenizers, (await fetchBytes(t.file)).slice().buffer, {
    maxLength: t.max_length, bosTokenId: t.bos_token_id, eosTokenId: t.eos_token_id, padTokenId: t.pad_token_id,
  });
  const loaded = [];
  for (const entry of Pipeline.tokenizers) loaded.push(await load(/** @type {TokenizerEntry} */ (m[entry])));
  return new Pipeline(model, ...loaded);
}
