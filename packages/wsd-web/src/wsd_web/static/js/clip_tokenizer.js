// Prompts to CLIP token ids exactly as diffusers' StableDiffusionPipeline makes
// them: `tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length,
// truncation=True).input_ids`, i.e. BOS, the BPE ids truncated to maxLength - 2,
// EOS, then pad ids up to maxLength.
//
// The BPE itself is HF tokenizers compiled to wasm (the vendored
// @mlc-ai/web-tokenizers, global `tokenizers` after
// `<script src="vendor/tokenizers/index.js">`), reading the pipeline's
// tokenizer.json. Its `encode(text)` does NOT run the tokenizer.json
// post-processor: for CLIP's (RobertaProcessing) it returns the bare BPE ids,
// without BOS/EOS. So that a tokenizer whose `encode` does add them still gives
// the same result, `create` probes `encode("")` once: an empty prompt has no
// BPE ids, so whatever comes back is what encode adds (nothing, or BOS and/or
// EOS), and exactly that is stripped from every encoding. Stripping by position
// rather than by value matters: a prompt that itself starts with the text
// "<|startoftext|>" has the BOS id as its first BPE id, and Python keeps it.
//
// Everything but `ClipTokenizer.create` is plain logic, tested under Node.

/**
 * @typedef {object} ClipTokenizerInfo  The pipeline tokenizer's settings.
 * @property {number} maxLength  `model_max_length` (77 for Stable Diffusion).
 * @property {number} bosTokenId  `<|startoftext|>`.
 * @property {number} eosTokenId  `<|endoftext|>`.
 * @property {number} padTokenId  `<|endoftext|>` in SD 1.x, `!` (0) in SD 2.x.
 */

/**
 * @typedef {object} BpeTokenizer  A tokenizer made by web-tokenizers' `Tokenizer.fromJSON`.
 * @property {(text: string) => Int32Array | number[]} encode
 * @property {() => void} [dispose]  Frees its wasm memory.
 */

/** @typedef {{fromJSON(json: ArrayBuffer): Promise<BpeTokenizer>}} BpeTokenizerFactory */

/**
 * The vendored module (`{Tokenizer}`, the page's global `tokenizers`) or its
 * `Tokenizer` class itself.
 * @typedef {BpeTokenizerFactory | {Tokenizer: BpeTokenizerFactory}} TokenizersModule
 */

/**
 * @typedef {object} AddedSpecialTokens  What a tokenizer's `encode` adds around the BPE ids.
 * @property {boolean} bos  A leading BOS id.
 * @property {boolean} eos  A trailing EOS id.
 */

const INFO_IDS = /** @type {const} */ (["bosTokenId", "eosTokenId", "padTokenId"]);
const MAX_INT32 = 2 ** 31 - 1;

/**
 * Checks `info` and returns a frozen copy of its four fields.
 * @param {unknown} info
 * @returns {Readonly<ClipTokenizerInfo>}
 */
export function validateInfo(info) {
  if (typeof info !== "object" || info === null) {
    throw new TypeError(`tokenizer info must be an object, got ${info === null ? "null" : typeof info}`);
  }
  const fields = /** @type {Record<string, unknown>} */ (info);
  const { maxLength } = fields;
  if (typeof maxLength !== "number" || !Number.isInteger(maxLength) || maxLength < 2 || maxLength > MAX_INT32) {
    throw new RangeError(
      `tokenizer info: maxLength must be an integer >= 2 (room for BOS and EOS), got ${String(maxLength)}`,
    );
  }
  for (const key of INFO_IDS) {
    const id = fields[key];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_INT32) {
      throw new RangeError(`tokenizer info: ${key} must be a non-negative int32 token id, got ${String(id)}`);
    }
  }
  return Object.freeze({
    maxLength,
    bosTokenId: /** @type {number} */ (fields.bosTokenId),
    eosTokenId: /** @type {number} */ (fields.eosTokenId),
    padTokenId: /** @type {number} */ (fields.padTokenId),
  });
}

/**
 * What `encode` adds, from what it returned for the empty prompt (which has no BPE ids).
 * @param {ArrayLike<number>} emptyPromptIds  `encode("")`.
 * @param {ClipTokenizerInfo} info
 * @returns {AddedSpecialTokens}
 */
export function addedSpecialTokens(emptyPromptIds, info) {
  const ids = Array.from(emptyPromptIds);
  let rest = ids;
  const bos = rest[0] === info.bosTokenId;
  if (bos) rest = rest.slice(1);
  const eos = rest.length === 1 && rest[0] === info.eosTokenId;
  if (eos) rest = [];
  if (rest.length > 0) {
    throw new Error(
      `the tokenizer encodes the empty prompt as [${ids.join(", ")}]: expected nothing or ` +
        `BOS (${info.bosTokenId}) and/or EOS (${info.eosTokenId}); do the tokenizer info ids match tokenizer.json?`,
    );
  }
  return { bos, eos };
}

/**
 * The BPE ids of an encoding: `ids` without what `encode` added.
 * @param {ArrayLike<number>} ids
 * @param {AddedSpecialTokens} added
 * @param {ClipTokenizerInfo} info
 * @returns {number[]}
 */
export function stripAddedSpecialTokens(ids, added, info) {
  const all = Array.from(ids);
  const start = added.bos ? 1 : 0;
  const end = added.eos ? all.length - 1 : all.length;
  if (added.bos && all[0] !== info.bosTokenId) {
    throw new Error(`expected the encoding to start with BOS ${info.bosTokenId}, got [${all.join(", ")}]`);
  }
  if (added.eos && (end < start || all[end] !== info.eosTokenId)) {
    throw new Error(`expected the encoding to end with EOS ${info.eosTokenId}, got [${all.join(", ")}]`);
  }
  return all.slice(start, end);
}

/**
 * BOS, the BPE ids truncated to `maxLength - 2`, EOS, then pad ids: exactly `maxLength` ids.
 * @param {ArrayLike<number>} body  The BPE ids of a prompt, without special tokens.
 * @param {ClipTokenizerInfo} info
 * @returns {Int32Array}
 */
export function frameTokenIds(body, info) {
  const ids = new Int32Array(info.maxLength).fill(info.padTokenId);
  const n = Math.min(body.length, info.maxLength - 2);
  ids[0] = info.bosTokenId;
  for (let i = 0; i < n; i++) ids[i + 1] = body[i];
  ids[n + 1] = info.eosTokenId;
  return ids;
}

export class ClipTokenizer {
  /**
   * Use {@link ClipTokenizer.create}.
   * @param {BpeTokenizer} bpe
   * @param {ClipTokenizerInfo} info  Already validated.
   * @param {AddedSpecialTokens} added
   */
  constructor(bpe, info, added) {
    /** @readonly */
    this.bpe = bpe;
    /** @readonly */
    this.info = info;
    /** @readonly */
    this.added = added;
  }

  /**
   * @param {TokenizersModule} tokenizers  The vendored module (global `tokenizers` in a page).
   * @param {ArrayBuffer} tokenizerJson  The pipeline's tokenizer.json.
   * @param {ClipTokenizerInfo} info
   * @returns {Promise<ClipTokenizer>}
   */
  static async create(tokenizers, tokenizerJson, info) {
    const checked = validateInfo(info);
    if (!(tokenizerJson instanceof ArrayBuffer)) throw new TypeError("tokenizerJson must be an ArrayBuffer");
    const factory = "Tokenizer" in tokenizers ? tokenizers.Tokenizer : tokenizers;
    const bpe = await factory.fromJSON(tokenizerJson);
    return new ClipTokenizer(bpe, checked, addedSpecialTokens(bpe.encode(""), checked));
  }

  /**
   * @param {string} text  A prompt.
   * @returns {Int32Array} exactly maxLength ids: BOS, body truncated to maxLength-2, EOS, then pad ids
   */
  encode(text) {
    if (typeof text !== "string") throw new TypeError(`a prompt must be a string, got ${typeof text}`);
    return frameTokenIds(stripAddedSpecialTokens(this.bpe.encode(text), this.added, this.info), this.info);
  }

  /** Frees the wasm tokenizer; the object is unusable after. */
  dispose() {
    this.bpe.dispose?.();
  }
}
