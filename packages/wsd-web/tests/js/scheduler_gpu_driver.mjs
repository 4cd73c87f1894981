// Drives each scheduler's update on the GPU through a compiled build's
// combineK kernels (Node + Dawn), with model outputs given by a fixture, and
// prints the final samples; tests/test_scheduler_kernels.py compares them
// with diffusers' scheduler.step on the same inputs.
//   node scheduler_gpu_driver.mjs BUILD_DIR FIXTURE_JSON
// FIXTURE_JSON: {cases: [{scheduler, config, steps, seed, modelOutputs: number[][]}]}
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { create, globals } from "webgpu";

import { createScheduler } from "../../src/wsd_web/static/js/schedulers/index.js";
import { SDModel } from "../../src/wsd_web/static/js/sd_model.js";
import { gpuTensorOps } from "../../src/wsd_web/static/js/sd_pipeline.js";
import { TorchGenerator } from "../../src/wsd_web/static/js/torch_random.js";
import { requestGPU } from "../../src/wsd_web/static/js/webgpu_device.js";
import { buildFiles } from "../../src/wsd_web/node/files.mjs";

const [dir, fixturePath] = process.argv.slice(2);
Object.assign(globalThis, globals);
const require = createRequire(import.meta.url);
// eslint-disable-next-line security/detect-non-literal-require -- one of our two vendored bundles, by name
const vendored = (/** @type {string} */ name) => require(`../../src/wsd_web/static/vendor/${name}/index.js`);
const gpu = await requestGPU(create([]));
let status = 0;
try {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the fixture the test wrote, named on argv
  const fixture = JSON.parse(await readFile(fixturePath, "utf8"));
  const model = await SDModel.open({
    tvmjs: vendored("tvmjs"),
    gpu,
    get: buildFiles(dir),
  });
  const tvm = model.session.tvm;
  const shape = model.manifest.latent.shape;
  /** @param {Float32Array} values */
  const upload = (values) => model.session.persist(() => tvm.empty(shape, "float32", tvm.webgpu()).copyFrom(values));
  /** @type {Array<{timesteps: number[], sample: number[]}>} */
  const results = [];
  for (const c of fixture.cases) {
    const generator = new TorchGenerator(c.seed);
    const scheduler = createScheduler(c.scheduler, c.config, gpuTensorOps(model, shape, generator));
    scheduler.setTimesteps(c.steps);
    const sigma = Math.fround(scheduler.initNoiseSigma);
    let sample = upload(generator.randn(shape).map((x) => Math.fround(x * sigma)));
    for (let i = 0; i < scheduler.timesteps.length; i++) {
      const t = scheduler.timesteps[i];
      const input = scheduler.scaleModelInput(sample, t);
      if (input !== sample) input.dispose();
      const output = upload(Float32Array.from(c.modelOutputs[i]));
      const next = scheduler.step(output, t, sample);
      output.dispose();
      sample.dispose();
      sample = next;
    }
    results.push({ timesteps: scheduler.timesteps, sample: Array.from(await model.session.download(sample)) });
    sample.dispose();
    scheduler.dispose();
  }
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(results)}\n`, resolve));
  model.dispose();
} catch (error) {
  process.stderr.write(`scheduler driver failed: ${error instanceof Error ? error.stack : error}\n`);
  status = 1;
} finally {
  gpu.device.destroy();
}
process.exit(status);
