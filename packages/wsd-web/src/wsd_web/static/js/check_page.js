// The runtime-check page: runs the check build found at ?model=DIR (default
// "model/") and shows the result; `window.wsdCheck` holds it for automation.
import { runCheck } from "./check_runner.js";
import { requestGPU } from "./webgpu_device.js";

/** Largest error still counted as a pass on fp32 (the page's verdict only). */
const TOLERANCE = 1e-4;

const status = /** @type {HTMLElement} */ (document.getElementById("status"));
const table = /** @type {HTMLTableElement} */ (document.getElementById("results"));
const base = new URL(new URLSearchParams(location.search).get("model") ?? "model/", location.href);

/** @param {string} path */
async function fetchBytes(path) {
  const response = await fetch(new URL(path, base));
  if (!response.ok) throw new Error(`fetching ${response.url} failed: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** @type {any} */ (window).wsdCheck = requestGPU(navigator.gpu).then(
  (gpu) => runCheck({ tvmjs: /** @type {any} */ (window).tvmjs, gpu, fetchBytes }),
).then(
  (result) => {
    const body = /** @type {HTMLTableSectionElement} */ (table.tBodies[0]);
    for (const fn of result.functions) {
      const row = body.insertRow();
      row.className = fn.maxAbsError <= TOLERANCE ? "ok" : "fail";
      for (const text of [fn.name, fn.shape.join("×"), fn.maxAbsError.toExponential(2)]) {
        row.insertCell().textContent = text;
      }
    }
    table.hidden = false;
    status.textContent = `Ran on ${result.adapter}; loaded in ${result.loadMs.toFixed(0)} ms.`;
    return result;
  },
  (error) => {
    status.textContent = String(error);
    status.className = "fail";
    return { error: String(error) };
  },
);
