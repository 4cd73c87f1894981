import assert from "node:assert/strict";
import { test } from "node:test";

import { paceSubmissions } from "../../src/wsd_web/static/js/tvm_session.js";

/** A context shaped like tvmjs' WebGPU one: shaders record their dispatches, flushes are logged. */
function recordingContext() {
  /** @type {string[]} */
  const events = [];
  const context = {
    events,
    /**
     * @param {{name: string}} finfo
     * @param {string} _code
     * @param {boolean} asyncMode
     */
    createShadeInternal(finfo, _code, asyncMode) {
      const submit = (/** @type {number} */ arg) => events.push(`${finfo.name}(${arg})`);
      return asyncMode ? Promise.resolve(submit) : submit;
    },
    flushCommands() {
      events.push("flush");
    },
  };
  return context;
}

test("pending dispatches are submitted every N dispatches, across kernels", async () => {
  const context = recordingContext();
  paceSubmissions(context, 3);
  const a = /** @type {(arg: number) => void} */ (context.createShadeInternal({ name: "a" }, "", false));
  const b = await context.createShadeInternal({ name: "b" }, "", true);
  for (let i = 0; i < 4; i++) a(i);
  b(9);
  b(10);
  assert.deepEqual(context.events, ["a(0)", "a(1)", "a(2)", "flush", "a(3)", "b(9)", "b(10)", "flush"]);
});

test("arguments reach the shader unchanged and a count below N never flushes", () => {
  const context = recordingContext();
  paceSubmissions(context, 32);
  const a = /** @type {(arg: number) => void} */ (context.createShadeInternal({ name: "a" }, "", false));
  a(7);
  assert.deepEqual(context.events, ["a(7)"]);
});

test("a pace below one dispatch is refused", () => {
  assert.throws(() => paceSubmissions(recordingContext(), 0), /at least 1, got 0/);
});
