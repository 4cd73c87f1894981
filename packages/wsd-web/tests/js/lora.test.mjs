// LoRA files as untrusted input (safetensors.js, lora.js): diffusers/PEFT and
// kohya keys matched to a build's lora_targets, the scaling each format gives,
// and one-line refusals of files that do not fit. The GPU merge itself is
// tested through Dawn (tests/test_lora_dawn.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { MERGE_BATCH_BYTES, batches, readLora, transpose } from "../../src/wsd_web/static/js/lora.js";
import { MAX_HEADER_BYTES, float32Values, parseSafetensors } from "../../src/wsd_web/static/js/safetensors.js";
import { manifest } from "./manifest_fixtures.mjs";

/**
 * A .safetensors file: tensors by name as [dtype (F32 or BF16), shape, values];
 * `header` replaces the JSON header.
 * @param {Record<string, [string, number[], number[]]>} tensors
 * @param {{header?: unknown, metadata?: Record<string, string>}} [options]
 */
function safetensors(tensors, { header, metadata } = {}) {
  /** @type {Record<string, unknown>} */
  const entries = metadata ? { __metadata__: metadata } : {};
  const chunks = [];
  let offset = 0;
  for (const [name, [dtype, shape, values]] of Object.entries(tensors)) {
    const bytes = dtype === "F32" ? new Uint8Array(Float32Array.from(values).buffer)
      : new Uint8Array(Uint16Array.from(values, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16).buffer);
    entries[name] = { dtype, shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const text = new TextEncoder().encode(JSON.stringify(header ?? entries));
  const file = new Uint8Array(8 + text.byteLength + offset);
  new DataView(file.buffer).setUint32(0, text.byteLength, true);
  file.set(text, 8);
  let at = 8 + text.byteLength;
  for (const c of chunks) {
    file.set(c, at);
    at += c.byteLength;
  }
  return file;
}

const Q = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
const TE = "encoder.layers.0.self_attn.q_proj";
/** A build whose UNet has one 4x6 linear (rows) and one conv, its text encoder a 6x6 (cols). */
const build = manifest({
  lora: { function: "lora_merge" },
  components: {
    unet: {
      param_names: ["unet.0", "unet.1"], param_count: 2, param_bytes: 0,
      lora_targets: {
        [Q]: [{ param: "unet.0", layout: "rows", shape: [4, 6], dtype: "float32" }],
        conv_in: [{ param: "unet.1", layout: "rows", shape: [4, 2, 3, 3], dtype: "float32" }],
      },
    },
    text_encoder: {
      param_names: ["text_encoder.0"], param_count: 1, param_bytes: 0,
      lora_targets: { [TE]: [{ param: "text_encoder.0", layout: "cols", shape: [6, 6], dtype: "float32" }] },
    },
  },
});
const ones = (/** @type {number} */ n) => Array(n).fill(1);

test("diffusers/PEFT keys: modules matched, rank and scaling from the metadata", () => {
  const metadata = { lora_adapter_metadata: JSON.stringify({ "unet.r": 2, "unet.lora_alpha": 8, "text_encoder.r": 2, "text_encoder.lora_alpha": 2 }) };
  const file = safetensors({
    [`unet.${Q}.lora_A.weight`]: ["F32", [2, 6], ones(12)],
    [`unet.${Q}.lora_B.weight`]: ["BF16", [4, 2], [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]],
    [`text_encoder.text_model.${TE}.lora_A.weight`]: ["BF16", [2, 6], ones(12)],
    [`text_encoder.text_model.${TE}.lora_B.weight`]: ["F32", [6, 2], ones(12)],
  }, { metadata });
  const lora = readLora(file, "style.safetensors", build);
  assert.equal(lora.modules.length, 2);
  const unet = lora.modules.find((m) => m.component === "unet");
  assert.equal(unet?.path, Q);
  assert.equal(unet?.rank, 2);
  assert.equal(unet?.scaling, 4);
  assert.deepEqual(Array.from(unet?.up ?? []), [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]);
  const te = lora.modules.find((m) => m.component === "text_encoder");
  assert.equal(te?.path, TE);
  assert.equal(te?.scaling, 1);
  assert.equal(te?.targets[0].layout, "cols");
});

test("kohya keys: underscored paths, lora_down/lora_up, alpha per module; a conv LoRA", () => {
  const file = safetensors({
    "lora_unet_conv_in.lora_down.weight": ["F32", [3, 2, 3, 3], ones(54)],
    "lora_unet_conv_in.lora_up.weight": ["F32", [4, 3, 1, 1], ones(12)],
    "lora_unet_conv_in.alpha": ["F32", [], [1.5]],
    [`lora_te_text_model_${TE.replaceAll(".", "_")}.lora_down.weight`]: ["F32", [1, 6], ones(6)],
    [`lora_te_text_model_${TE.replaceAll(".", "_")}.lora_up.weight`]: ["F32", [6, 1], ones(6)],
  });
  const lora = readLora(file, "kohya.safetensors", build);
  const conv = lora.modules.find((m) => m.path === "conv_in");
  assert.equal(conv?.rank, 3);
  assert.equal(conv?.scaling, 0.5);
  assert.equal(conv?.down.length, 54);
  assert.equal(lora.modules.find((m) => m.path === TE)?.scaling, 1);
});

/** @type {[string, () => Uint8Array, RegExp][]} */
const BAD = [
  ["a truncated file", () => safetensors({ [`unet.${Q}.lora_A.weight`]: ["F32", [2, 6], ones(12)] }).slice(0, -4), /lie beyond the file's 44 bytes of data \(truncated\?\)/],
  ["a header larger than the file", () => safetensors({}).slice(0, 9), /its header claims 2 bytes, the file has 9 \(truncated\?\)|header claims/],
  ["an oversized header", () => {
    const f = new Uint8Array(16);
    new DataView(f.buffer).setUint32(0, MAX_HEADER_BYTES + 1, true);
    return f;
  }, /its header claims 16777217 bytes \(at most 16777216\)/],
  ["not safetensors", () => new TextEncoder().encode("<html>not a LoRA</html>"), /not a usable \.safetensors file/],
  ["a header that is not JSON", () => {
    const f = safetensors({}, { header: {} });
    f[8] = 0x7b; f[9] = 0x7b;
    return f;
  }, /its header is not JSON/],
  ["an integer dtype", () => safetensors({}, { header: { x: { dtype: "I64", shape: [1], data_offsets: [0, 8] } } }), /x is "I64"; LoRA weights must be F32, F16 or BF16/],
  ["a shape that does not fit its bytes", () => safetensors({}, { header: { x: { dtype: "F32", shape: [3], data_offsets: [0, 0] } } }), /x holds 0 bytes, its shape needs 12/],
  ["a LoRA for another model", () => safetensors({
    "unet.input_blocks.1.1.proj_in.lora_A.weight": ["F32", [2, 6], ones(12)],
    "unet.input_blocks.1.1.proj_in.lora_B.weight": ["F32", [4, 2], ones(8)],
  }), /1 of its 1 modules are not weights of this sd15 build \(first: unet input_blocks\.1\.1\.proj_in\): a LoRA for another model\?/],
  ["a rank that does not fit", () => safetensors({
    [`unet.${Q}.lora_A.weight`]: ["F32", [2, 6], ones(12)],
    [`unet.${Q}.lora_B.weight`]: ["F32", [4, 3], ones(12)],
  }), /down \[2,6\] and up \[4,3\] do not fit the weight \[4,6\]/],
  ["an input size that does not fit", () => safetensors({
    [`unet.${Q}.lora_A.weight`]: ["F32", [2, 5], ones(10)],
    [`unet.${Q}.lora_B.weight`]: ["F32", [4, 2], ones(8)],
  }), /do not fit the weight \[4,6\]/],
  ["a down without its up", () => safetensors({ [`unet.${Q}.lora_A.weight`]: ["F32", [2, 6], ones(12)] }), /has no up \(B\) weight/],
  ["a key that is no LoRA weight", () => safetensors({ [`unet.${Q}.hada_w1_a`]: ["F32", [1], [1]] }), /hada_w1_a is not a LoRA weight this app reads/],
  ["an empty file", () => safetensors({}), /the file holds no tensors/],
];

for (const [what, make, message] of BAD) {
  test(`refused with one line: ${what}`, () => {
    assert.throws(() => readLora(make(), "bad.safetensors", build), (/** @type {Error} */ e) => {
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  });
}

test("a quantized build takes no LoRA", () => {
  const quantized = { ...build, lora: undefined, model: { ...build.model, quantize: "int8" } };
  assert.throws(() => readLora(safetensors({}), "x.safetensors", quantized), /this build cannot take LoRAs \(its weights are int8\): use a build without --quantize/);
});

test("float32Values widens F16 and BF16 exactly", () => {
  const { tensors } = parseSafetensors(safetensors({ b: ["BF16", [2], [0.5, 3]] }));
  assert.deepEqual(Array.from(float32Values({ dtype: "F16", shape: [2], bytes: new Uint8Array(Uint16Array.of(0x3c00, 0xc000).buffer) })), [1, -2]);
  assert.deepEqual(Array.from(float32Values(/** @type {any} */ (tensors.get("b")))), [0.5, 3]);
});

test("the text encoder layer after the build's last is skipped (SDXL's penultimate states), others are not", () => {
  const layer = (/** @type {number} */ k) => ({
    [`text_encoder.encoder.layers.${k}.self_attn.q_proj.lora_A.weight`]: /** @type {[string, number[], number[]]} */ (["F32", [1, 6], ones(6)]),
    [`text_encoder.encoder.layers.${k}.self_attn.q_proj.lora_B.weight`]: /** @type {[string, number[], number[]]} */ (["F32", [6, 1], ones(6)]),
  });
  const lora = readLora(safetensors({ ...layer(0), ...layer(1) }), "xl.safetensors", build);
  assert.deepEqual(lora.modules.map((m) => m.path), [TE]);
  assert.throws(() => readLora(safetensors({ ...layer(0), ...layer(2) }), "xl.safetensors", build),
    /1 of its 2 modules are not weights of this sd15 build \(first: text_encoder encoder\.layers\.2\.self_attn\.q_proj\)/);
});

test("merges run in batches of at most MERGE_BATCH_BYTES of LoRA tensors (a larger module alone)", () => {
  const m = (/** @type {number} */ n) => /** @type {any} */ ({ down: new Float32Array(n), up: new Float32Array(0) });
  const quarter = MERGE_BATCH_BYTES / 16;
  assert.deepEqual(batches([m(quarter), m(quarter), m(quarter), m(quarter), m(quarter)]).map((b) => b.length), [4, 1]);
  assert.deepEqual(batches([m(quarter), m(MERGE_BATCH_BYTES), m(1)]).map((b) => b.length), [1, 1, 1]);
  assert.deepEqual(batches([]), []);
});

test("transpose: a row-major matrix's columns become its rows", () => {
  assert.deepEqual(Array.from(transpose(Float32Array.of(1, 2, 3, 4, 5, 6), 2, 3)), [1, 4, 2, 5, 3, 6]);
});
