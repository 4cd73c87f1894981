import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { test } from "node:test";

import {
  ClipTokenizer,
  addedSpecialTokens,
  frameTokenIds,
  stripAddedSpecialTokens,
  validateInfo,
} from "../../src/wsd_web/static/js/clip_tokenizer.js";

/** Stable Diffusion 1.x's CLIP settings. */
const SD = { maxLength: 77, bosTokenId: 49406, eosTokenId: 49407, padTokenId: 49407 };
/** Small ones, with a pad id distinct from EOS (as SD 2.x pads with "!"). */
const SMALL = { maxLength: 6, bosTokenId: 8, eosTokenId: 9, padTokenId: 0 };

test("frames the body as BOS, body, EOS, then pad ids, exactly maxLength long", () => {
  assert.deepEqual(Array.from(frameTokenIds([5, 6], SMALL)), [8, 5, 6, 9, 0, 0]);
  const ids = frameTokenIds([320, 1125], SD);
  assert.ok(ids instanceof Int32Array);
  assert.equal(ids.length, 77);
  assert.deepEqual(Array.from(ids.subarray(0, 4)), [49406, 320, 1125, 49407]);
  assert.ok(ids.subarray(3).every((id) => id === 49407));
});

test("the empty prompt is BOS, EOS and padding", () => {
  assert.deepEqual(Array.from(frameTokenIds([], SMALL)), [8, 9, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(frameTokenIds(new Int32Array(0), { ...SMALL, maxLength: 2 })), [8, 9]);
});

test("truncates the body to maxLength - 2 tokens: 75 for CLIP", () => {
  const body = (/** @type {number} */ n) => Array.from({ length: n }, (_, i) => 1000 + i);
  for (const n of [74, 75]) {
    const ids = frameTokenIds(body(n), SD);
    assert.equal(ids.length, 77);
    assert.deepEqual(Array.from(ids.subarray(1, n + 1)), body(n));
    assert.equal(ids[n + 1], SD.eosTokenId);
  }
  for (const n of [76, 77, 300]) {
    const ids = frameTokenIds(body(n), SD);
    assert.deepEqual(Array.from(ids), [SD.bosTokenId, ...body(75), SD.eosTokenId]);
  }
  assert.deepEqual(Array.from(frameTokenIds([1, 2, 3, 4, 5], SMALL)), [8, 1, 2, 3, 4, 9]);
});

test("validateInfo returns a frozen copy of the four fields", () => {
  const info = validateInfo({ ...SD, extra: "ignored" });
  assert.deepEqual(info, SD);
  assert.ok(Object.isFrozen(info));
  assert.deepEqual(validateInfo({ maxLength: 2, bosTokenId: 0, eosTokenId: 0, padTokenId: 0 }).maxLength, 2);
});

test("validateInfo rejects what cannot be a CLIP tokenizer's settings", () => {
  assert.throws(() => validateInfo(null), { name: "TypeError", message: /must be an object, got null/ });
  assert.throws(() => validateInfo("77"), { name: "TypeError", message: /got string/ });
  for (const maxLength of [undefined, "77", 1, 0, -5, 7.5, NaN, Infinity, 2 ** 31]) {
    assert.throws(() => validateInfo({ ...SD, maxLength }), {
      name: "RangeError",
      message: /maxLength must be an integer >= 2/,
    });
  }
  for (const key of ["bosTokenId", "eosTokenId", "padTokenId"]) {
    for (const bad of [undefined, null, "1", -1, 1.5, NaN, 2 ** 31]) {
      assert.throws(() => validateInfo({ ...SD, [key]: bad }), {
        name: "RangeError",
        // eslint-disable-next-line security/detect-non-literal-regexp -- built from the test's own constants
        message: new RegExp(`${key} must be a non-negative int32 token id, got ${String(bad)}`),
      });
    }
  }
});

test("detects what encode adds from the empty prompt's encoding", () => {
  assert.deepEqual(addedSpecialTokens([], SMALL), { bos: false, eos: false });
  assert.deepEqual(addedSpecialTokens(new Int32Array([8, 9]), SMALL), { bos: true, eos: true });
  assert.deepEqual(addedSpecialTokens([8], SMALL), { bos: true, eos: false });
  assert.deepEqual(addedSpecialTokens([9], SMALL), { bos: false, eos: true });
  for (const bad of [[7], [9, 8], [8, 9, 9], [8, 7, 9]]) {
    assert.throws(() => addedSpecialTokens(bad, SMALL), /encodes the empty prompt as \[.*\]: expected nothing or BOS \(8\)/);
  }
});

test("strips exactly what encode adds, by position", () => {
  const none = { bos: false, eos: false };
  const both = { bos: true, eos: true };
  // A prompt that starts with the text "<|startoftext|>" has BOS as its first BPE id: kept.
  assert.deepEqual(stripAddedSpecialTokens(new Int32Array([8, 3, 9]), none, SMALL), [8, 3, 9]);
  assert.deepEqual(stripAddedSpecialTokens([8, 8, 3, 9, 9], both, SMALL), [8, 3, 9]);
  assert.deepEqual(stripAddedSpecialTokens([8, 9], both, SMALL), []);
  assert.deepEqual(stripAddedSpecialTokens([8, 3], { bos: true, eos: false }, SMALL), [3]);
  assert.deepEqual(stripAddedSpecialTokens([3, 9], { bos: false, eos: true }, SMALL), [3]);
  assert.throws(() => stripAddedSpecialTokens([3, 9], both, SMALL), /start with BOS 8, got \[3, 9\]/);
  assert.throws(() => stripAddedSpecialTokens([8, 3], both, SMALL), /end with EOS 9, got \[8, 3\]/);
  assert.throws(() => stripAddedSpecialTokens([8], both, SMALL), /end with EOS 9, got \[8\]/);
});

/**
 * A stand-in for web-tokenizers: encodes words by a table, optionally adding BOS/EOS.
 * @param {{bos?: number, eos?: number}} adds
 */
function fakeTokenizers(adds = {}) {
  /** @type {Record<string, number>} */
  const words = { a: 3, cat: 7, "<|startoftext|>": 8, "<|endoftext|>": 9 };
  const calls = { json: "", disposed: 0 };
  const Tokenizer = {
    /** @param {ArrayBuffer} json */
    async fromJSON(json) {
      calls.json = new TextDecoder().decode(json);
      return {
        /** @param {string} text */
        encode(text) {
          const body = text.split(/\s+/).filter(Boolean).map((w) => words[w.toLowerCase()] ?? 1);
          const bos = adds.bos === undefined ? [] : [adds.bos];
          const eos = adds.eos === undefined ? [] : [adds.eos];
          return new Int32Array([...bos, ...body, ...eos]);
        },
        dispose() {
          calls.disposed++;
        },
      };
    },
  };
  return { module: { Tokenizer }, calls };
}

const JSON_BUFFER = new TextEncoder().encode('{"model": {}}').buffer;

test("create + encode with a tokenizer whose encode adds nothing", async () => {
  const { module, calls } = fakeTokenizers();
  const tok = await ClipTokenizer.create(module, JSON_BUFFER, SMALL);
  assert.equal(calls.json, '{"model": {}}');
  assert.deepEqual(tok.added, { bos: false, eos: false });
  assert.deepEqual(Array.from(tok.encode("A cat")), [8, 3, 7, 9, 0, 0]);
  assert.deepEqual(Array.from(tok.encode("")), [8, 9, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(tok.encode("<|startoftext|> cat")), [8, 8, 7, 9, 0, 0]);
  assert.deepEqual(Array.from(tok.encode("a a a a a a a")), [8, 3, 3, 3, 3, 9]);
  tok.dispose();
  assert.equal(calls.disposed, 1);
});

test("create + encode with a tokenizer whose encode adds BOS and EOS (the Tokenizer class given)", async () => {
  const { module } = fakeTokenizers({ bos: 8, eos: 9 });
  const tok = await ClipTokenizer.create(module.Tokenizer, JSON_BUFFER, SMALL);
  assert.deepEqual(tok.added, { bos: true, eos: true });
  assert.deepEqual(Array.from(tok.encode("A cat")), [8, 3, 7, 9, 0, 0]);
  assert.deepEqual(Array.from(tok.encode("<|startoftext|> cat <|endoftext|>")), [8, 8, 7, 9, 9, 0]);
  assert.deepEqual(Array.from(tok.encode("")), [8, 9, 0, 0, 0, 0]);
});

test("create rejects bad info, a bad buffer and ids that do not match the tokenizer", async () => {
  const { module } = fakeTokenizers();
  await assert.rejects(ClipTokenizer.create(module, JSON_BUFFER, { ...SMALL, maxLength: 1 }), RangeError);
  await assert.rejects(
    ClipTokenizer.create(module, /** @type {ArrayBuffer} */ (/** @type {unknown} */ ("{}")), SMALL),
    /tokenizerJson must be an ArrayBuffer/,
  );
  const adds = fakeTokenizers({ bos: 49406, eos: 49407 }).module;
  await assert.rejects(ClipTokenizer.create(adds, JSON_BUFFER, SMALL), /do the tokenizer info ids match tokenizer\.json\?/);
  const tok = await ClipTokenizer.create(module, JSON_BUFFER, SMALL);
  assert.throws(() => tok.encode(/** @type {string} */ (/** @type {unknown} */ (null))), /a prompt must be a string, got object/);
  tok.dispose();
  new ClipTokenizer({ encode: () => [] }, validateInfo(SMALL), { bos: false, eos: false }).dispose(); // no dispose: fine
});

// The real wasm, as vendored (`npm run vendor`): its bundle is UMD, loaded as CommonJS.
const BUNDLE = new URL("../../src/wsd_web/static/vendor/tokenizers/index.js", import.meta.url);

/** A CLIP-style tokenizer.json (BPE with </w> word ends, RobertaProcessing) over a few words. */
const CLIP_STYLE_JSON = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [
    ...["<|startoftext|>", "<|endoftext|>"].map((content, i) => ({
      id: 8 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
  ],
  normalizer: { type: "Lowercase" },
  pre_tokenizer: { type: "Whitespace" },
  post_processor: {
    type: "RobertaProcessing",
    sep: ["<|endoftext|>", 9],
    cls: ["<|startoftext|>", 8],
    trim_offsets: false,
    add_prefix_space: false,
  },
  decoder: null,
  model: {
    type: "BPE",
    dropout: null,
    unk_token: "<|endoftext|>",
    continuing_subword_prefix: "",
    end_of_word_suffix: "</w>",
    fuse_unk: false,
    byte_fallback: false,
    vocab: {
      ...{ a: 0, c: 1, t: 2, "a</w>": 3, "c</w>": 4, "t</w>": 5, ca: 6, "cat</w>": 7 },
      ...{ "<|startoftext|>": 8, "<|endoftext|>": 9 },
    },
    merges: ["c a", "ca t</w>"],
  },
};

test("the vendored web-tokenizers wasm: encode adds no special tokens, ClipTokenizer frames them", async () => {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the vendored bundle's fixed path
  assert.ok(existsSync(BUNDLE), `${BUNDLE.pathname} is missing: run \`npm run vendor\``);
  const tokenizers = createRequire(import.meta.url)(BUNDLE.pathname);
  const json = new TextEncoder().encode(JSON.stringify(CLIP_STYLE_JSON)).buffer;
  const raw = await tokenizers.Tokenizer.fromJSON(json);
  assert.deepEqual(Array.from(raw.encode("A cat")), [3, 7]); // the post-processor is not applied
  assert.deepEqual(Array.from(raw.encode("")), []);
  raw.dispose();
  const info = { maxLength: 7, bosTokenId: 8, eosTokenId: 9, padTokenId: 9 };
  const tok = await ClipTokenizer.create(tokenizers, json, info);
  assert.deepEqual(tok.added, { bos: false, eos: false });
  assert.deepEqual(Array.from(tok.encode("A cat TAC")), [8, 3, 7, 2, 0, 4, 9]);
  assert.deepEqual(Array.from(tok.encode("cat")), [8, 7, 9, 9, 9, 9, 9]);
  assert.deepEqual(Array.from(tok.encode("cat cat cat cat cat cat")), [8, 7, 7, 7, 7, 7, 9]);
  tok.dispose();
});
