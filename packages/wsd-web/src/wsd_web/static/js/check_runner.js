// Runs a runtime-check build (written by `wsd-compile check`): every function
// of check.json on the GPU, compared with the expected outputs stored beside it.

import { float32Values, parseTensorCacheIndex, readTensors } from "./tensor_cache.js";
import { TVMSession } from "./tvm_session.js";

/**
 * @typedef {object} CheckFunctionResult
 * @property {string} name
 * @property {number[]} shape
 * @property {number} maxAbsError  Against the expected output written at build time.
 * @property {number[]} output  The values the GPU computed.
 */

/**
 * @typedef {object} CheckResult
 * @property {string} adapter
 * @property {number} loadMs  Fetching and instantiating the wasm and tensors.
 * @property {CheckFunctionResult[]} functions
 */

/**
 * @param {Float32Array} a
 * @param {Float32Array} b
 * @returns {number}
 */
export function maxAbsDifference(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}

/**
 * @param {object} options
 * @param {import("./tvm_session.js").TVMJS} options.tvmjs
 * @param {import("./webgpu_device.js").GPUInfo} options.gpu
 * @param {(path: string) => Promise<Uint8Array>} options.fetchBytes  Files of the check directory.
 * @param {() => number} [options.now]
 * @returns {Promise<CheckResult>}
 */
export async function runCheck({ tvmjs, gpu, fetchBytes, now = () => performance.now() }) {
  const start = now();
  const decode = async (/** @type {string} */ path) => JSON.parse(new TextDecoder().decode(await fetchBytes(path)));
  const check = await decode("check.json");
  const tensors = await readTensors(parseTensorCacheIndex(await decode("tensor-cache.json")), fetchBytes);
  const wasm = await fetchBytes(check.wasm);
  const session = await TVMSession.create(tvmjs, wasm.slice().buffer, gpu.device);
  try {
    /** @param {string} name */
    const tensor = (name) => {
      const t = tensors.get(name);
      if (!t) throw new Error(`tensor-cache.json has no tensor ${name}, which check.json needs`);
      return t;
    };
    const gpuArgs = new Map();
    for (const fn of check.functions) {
      for (const name of fn.args) {
        if (!gpuArgs.has(name)) gpuArgs.set(name, session.upload(tensor(name).record, tensor(name).bytes));
      }
    }
    const loadMs = now() - start;
    /** @type {CheckFunctionResult[]} */
    const functions = [];
    for (const fn of check.functions) {
      const values = await session.scoped(
        () => session.download(session.func(fn.name)(...fn.args.map((/** @type {string} */ n) => gpuArgs.get(n)))),
      );
      functions.push({
        name: fn.name,
        shape: fn.output.shape,
        maxAbsError: maxAbsDifference(values, float32Values(tensor(fn.expected))),
        output: Array.from(values),
      });
    }
    return { adapter: gpu.adapter, loadMs, functions };
  } finally {
    session.dispose();
  }
}
