// Manifests with what the app reads (the rest of a real one is irrelevant to
// the unit tests), as wsd-compile writes them for a tiny SD 1.5 or SDXL build.

import { MANIFEST_VERSION } from "../../src/wsd_web/static/js/sd_model.js";

/** The functions an SD 1.5 text-to-image pipeline calls. */
export const SD15_TEXT_TO_IMAGE = Object.freeze([
  "text_encoder", "cfg_embeddings", "unet_input", "unet", "cfg_combine",
  "combine1", "combine2", "combine3", "combine4", "clamp", "vae_decode", "image_to_rgba",
]);

/** The functions an SDXL text-to-image pipeline calls. */
export const SDXL_TEXT_TO_IMAGE = Object.freeze([...SD15_TEXT_TO_IMAGE, "text_encoder_2", "text_concat", "cfg_text_embeds"]);

/** @param {readonly string[]} names */
function functionsOf(names) {
  return Object.fromEntries(names.map((f) => [f, { inputs: [], outputs: [], params: null }]));
}

/**
 * An SD 1.5 manifest.
 * @param {Record<string, any>} [overrides]
 * @returns {any}
 */
export function manifest(overrides = {}) {
  return {
    version: MANIFEST_VERSION,
    kind: "sd15",
    model: { source: "t", precision: "fp32" },
    image: { height: 64, width: 64 },
    runtime: { tvm: "0.27.0" },
    functions: functionsOf(SD15_TEXT_TO_IMAGE),
    tasks: { "text-to-image": [...SD15_TEXT_TO_IMAGE] },
    scheduler: { class_name: "PNDMScheduler", config: {}, max_terms: 4 },
    ...overrides,
  };
}

/**
 * An SDXL manifest.
 * @param {Record<string, any>} [overrides]
 * @returns {any}
 */
export function xlManifest(overrides = {}) {
  const tokenizer = { file: "tokenizer.json", max_length: 77, bos_token_id: 1017, eos_token_id: 1018, pad_token_id: 1018 };
  return manifest({
    kind: "sdxl",
    functions: functionsOf(SDXL_TEXT_TO_IMAGE),
    tasks: { "text-to-image": [...SDXL_TEXT_TO_IMAGE] },
    image: { height: 1024, width: 768 },
    tokenizer,
    tokenizer_2: { ...tokenizer, file: "tokenizer_2.json", pad_token_id: 0 },
    conditioning: { force_zeros_for_empty_prompt: true, pooled_token: "argmax", pooled_dim: 1280, time_ids_dim: 6, vae_force_upcast: true },
    ...overrides,
  });
}
