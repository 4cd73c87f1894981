// Runs a runtime-check build on WebGPU in Node through Dawn (npm `webgpu`)
// and prints the result as one JSON line.
//   node check.mjs DIR
// On a machine without a GPU, point Vulkan at SwiftShader:
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
import { createRequire } from "node:module";
import { globals } from "webgpu";

import { runCheck } from "../static/js/check_runner.js";
import { requestGPU } from "../static/js/webgpu_device.js";
import { createDawn } from "./dawn.mjs";
import { buildFiles } from "./files.mjs";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: node check.mjs DIR (a directory written by `wsd-compile check`)\n");
  process.exit(2);
}
Object.assign(globalThis, globals);
const tvmjs = createRequire(import.meta.url)("../static/vendor/tvmjs/index.js");
const gpu = await requestGPU(createDawn().gpu);
let status = 0;
try {
  const result = await runCheck({
    tvmjs,
    gpu,
    fetchBytes: buildFiles(dir),
  });
  // stdout may be a pipe (asynchronous): wait for the write before exiting.
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, resolve));
} catch (error) {
  process.stderr.write(`check failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  gpu.device.destroy();
}
process.exit(status);
