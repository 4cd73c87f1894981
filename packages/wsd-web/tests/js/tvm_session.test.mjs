import assert from "node:assert/strict";
import { test } from "node:test";

import { TVMJS_VERSION } from "../../src/wsd_web/static/js/build_stamp.js";
import {
  SUBGROUP_MATRIX_ENABLE, TVMSession, addEnableDirectives, paceSubmissions, webGPUContext, wrapDispatches,
} from "../../src/wsd_web/static/js/tvm_session.js";

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
    device: {
      queue: {
        onSubmittedWorkDone() {
          events.push("done?");
          return Promise.resolve();
        },
      },
    },
    currAllocatedBytes: 100,
    peakAllocatedBytes: 300,
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

test("wrapped dispatches know their kernel's name", async () => {
  const context = recordingContext();
  wrapDispatches(context, (kernel, dispatch) => (...args) => {
    context.events.push(`in ${kernel}`);
    dispatch(...args);
  });
  const a = /** @type {(arg: number) => void} */ (context.createShadeInternal({ name: "a" }, "", false));
  const b = await context.createShadeInternal({ name: "b" }, "", true);
  a(1);
  b(2);
  assert.deepEqual(context.events, ["in a", "a(1)", "in b", "b(2)"]);
});

test("subgroup-matrix shaders get the enable directive TVM cannot print, once; others are untouched", () => {
  /** @type {string[]} */
  const seen = [];
  const context = {
    /** @param {{name: string}} _finfo @param {string} code @param {boolean} _asyncMode */
    createShadeInternal(_finfo, code, _asyncMode) {
      seen.push(code);
      return () => {};
    },
  };
  addEnableDirectives(context);
  const matrix = "enable f16;\nfn k() { var a = subgroup_matrix_result<f32, 16, 16>(); }";
  context.createShadeInternal({ name: "m" }, matrix, false);
  context.createShadeInternal({ name: "p" }, "enable f16;\nfn k() {}", false);
  context.createShadeInternal({ name: "e" }, `${SUBGROUP_MATRIX_ENABLE}\n${matrix}`, false);
  assert.equal(seen[0], `${SUBGROUP_MATRIX_ENABLE}\n${matrix}`);
  assert.equal(seen[1], "enable f16;\nfn k() {}");
  assert.equal(seen[2], `${SUBGROUP_MATRIX_ENABLE}\n${matrix}`);
});

/** A tvmjs instance as far as TVMSession's own methods need one: scopes are logged. */
function fakeInstance() {
  const context = recordingContext();
  const tvm = {
    lib: { webGPUContext: context },
    beginScope: () => context.events.push("begin"),
    endScope: () => context.events.push("end"),
  };
  return { tvm, context, session: new TVMSession(/** @type {any} */ (tvm), /** @type {any} */ ({}), []) };
}

test("a tvmjs without the internals used is refused, naming the version this app was written for", () => {
  const partial = /** @type {any} */ ({ lib: { webGPUContext: { flushCommands() {}, currAllocatedBytes: 0 } } });
  const expected = `lacks createShadeInternal, device, peakAllocatedBytes: this app was written for @mlc-ai/web-runtime ${TVMJS_VERSION};`;
  assert.throws(() => webGPUContext(partial), (/** @type {Error} */ e) => e.message.includes(expected));
  assert.throws(() => webGPUContext(/** @type {any} */ ({ lib: {} })), /lacks lib\.webGPUContext/);
  const { tvm } = fakeInstance();
  assert.equal(webGPUContext(/** @type {any} */ (tvm)), tvm.lib.webGPUContext);
});

test("the session reads the runtime's GPU bytes and restarts the peak from what is held", () => {
  const { session } = fakeInstance();
  assert.equal(session.allocatedBytes(), 100);
  assert.equal(session.peakAllocatedBytes(), 300);
  session.resetPeakAllocatedBytes();
  assert.equal(session.peakAllocatedBytes(), 100);
});

test("a scoped run closes its scope, also when it fails", async () => {
  const { session, context } = fakeInstance();
  assert.equal(await session.scoped(async () => 7), 7);
  await assert.rejects(session.scoped(async () => { throw new Error("boom"); }), /boom/);
  assert.deepEqual(context.events, ["begin", "end", "begin", "end"]);
});

test("submitted() submits what is recorded and hands back the GPU's promise without waiting on it", async () => {
  const { session, context } = fakeInstance();
  const done = session.submitted();
  assert.deepEqual(context.events, ["flush", "done?"]);
  assert.ok(done instanceof Promise);
  await done;
});
