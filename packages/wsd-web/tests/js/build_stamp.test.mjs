import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  BuildMismatchError, TVMJS_VERSION, checkBuildStamp, readBuildStamp, runtimeMismatch,
} from "../../src/wsd_web/static/js/build_stamp.js";

/** @param {number} n */
function leb(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
}

/**
 * A valid WebAssembly module (no code) with custom sections.
 * @param {Array<[string, string]>} sections  [name, content]
 */
function wasm(sections) {
  const bytes = [0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  for (const [name, content] of sections) {
    const body = [...leb(name.length), ...new TextEncoder().encode(name), ...new TextEncoder().encode(content)];
    bytes.push(0, ...leb(body.length), ...body);
  }
  return new Uint8Array(bytes);
}

const stamp = { build_id: "0123456789abcdef", runtime: { tvm: "0.27.0.post1" } };

test("the stamp is read from among other custom sections, and the module stays valid", () => {
  const bytes = wasm([["pad", "x".repeat(300)], ["wsd.build", JSON.stringify(stamp)], ["after", ""]]);
  assert.ok(WebAssembly.validate(bytes));
  assert.deepEqual(readBuildStamp(bytes), stamp);
});

test("no stamp, not WebAssembly, a truncated module or a garbled stamp read as null", () => {
  assert.equal(readBuildStamp(wasm([["pad", "abc"]])), null);
  assert.equal(readBuildStamp(new TextEncoder().encode("<html>not found</html>")), null);
  const whole = wasm([["wsd.build", JSON.stringify(stamp)]]);
  assert.equal(readBuildStamp(whole.subarray(0, whole.length - 5)), null);
  assert.equal(readBuildStamp(wasm([["wsd.build", "{not json"]])), null);
  assert.equal(readBuildStamp(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), null);
});

test("a library of another build is named as such, with both build ids", () => {
  const bytes = wasm([["wsd.build", JSON.stringify({ ...stamp, build_id: "fedcba9876543210" })]]);
  assert.throws(
    () => checkBuildStamp("model.wasm", bytes, stamp),
    (e) => e instanceof BuildMismatchError && /manifest.json is from build 0123456789abcdef but model.wasm is from build fedcba9876543210/.test(e.message),
  );
  assert.doesNotThrow(() => checkBuildStamp("model.wasm", wasm([["wsd.build", JSON.stringify(stamp)]]), stamp));
  // Without a stamp the checksum decides (a corrupted file is not a build mismatch).
  assert.doesNotThrow(() => checkBuildStamp("model.wasm", wasm([]), stamp));
});

test("a library linked with another runtime series is refused; patch releases are fine", () => {
  assert.equal(runtimeMismatch({ tvm: "0.27.3" }), null);
  assert.match(String(runtimeMismatch({ tvm: "0.26.0" })), /TVM 0\.26\.0 web runtime, but this app ships tvmjs/);
  const bytes = wasm([["wsd.build", JSON.stringify({ ...stamp, runtime: { tvm: "1.0.0" } })]]);
  assert.throws(() => checkBuildStamp("model.wasm", bytes, stamp), /model.wasm: the model was linked with the TVM 1\.0\.0/);
});

test("TVMJS_VERSION is the tvmjs the lockfile installs and vendors", () => {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- this package's own lockfile
  const lock = JSON.parse(readFileSync(new URL("../../package-lock.json", import.meta.url), "utf8"));
  assert.equal(TVMJS_VERSION, lock.packages["node_modules/@mlc-ai/web-runtime"].version);
});

test("a library built for other quantized weights than the manifest states is refused with the fix", () => {
  const bytes = wasm([["wsd.build", JSON.stringify({ ...stamp, quantize: "int8" })]]);
  assert.throws(
    () => checkBuildStamp("model.wasm", bytes, { ...stamp, model: { quantize: "none" } }),
    /model.wasm was built for int8 weights but the manifest says none: serve the manifest.json .* or rebuild with wsd-compile --quantize int8/,
  );
  assert.throws(() => checkBuildStamp("model.wasm", bytes, stamp), /built for int8 weights but the manifest says none/);
  assert.doesNotThrow(() => checkBuildStamp("model.wasm", bytes, { ...stamp, model: { quantize: "int8" } }));
});
