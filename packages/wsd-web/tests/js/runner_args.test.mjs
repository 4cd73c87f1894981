// The Node runners' command line (node/runner_args.mjs): DIR, OPTIONS_JSON, --vae-tiles, --offload and
// --memory-budget.
import assert from "node:assert/strict";
import { test } from "node:test";

import { VAE_TILES, runnerArgs } from "../../src/wsd_web/node/runner_args.mjs";

test("the build, the options, the VAE decode auto and no offload unless asked", () => {
  assert.deepEqual(runnerArgs(["build", '{"steps": 2}']), { dir: "build", options: { steps: 2, vaeTiling: "auto", offload: false } });
  assert.deepEqual(runnerArgs(["build"]), { dir: "build", options: { vaeTiling: "auto", offload: false } });
  assert.deepEqual(runnerArgs([]), { dir: undefined, options: { vaeTiling: "auto", offload: false } });
  assert.deepEqual(VAE_TILES, ["auto", "on", "off"]);
});

test("--vae-tiles sets vaeTiling, before or after the positionals, and wins over the JSON's", () => {
  for (const mode of VAE_TILES) {
    assert.equal(runnerArgs(["build", "{}", "--vae-tiles", mode]).options.vaeTiling, mode);
    assert.equal(runnerArgs([`--vae-tiles=${mode}`, "build"]).options.vaeTiling, mode);
  }
  assert.equal(runnerArgs(["build", '{"vaeTiling": "off"}']).options.vaeTiling, "off");
  assert.equal(runnerArgs(["build", '{"vaeTiling": "off"}', "--vae-tiles", "on"]).options.vaeTiling, "on");
});

test("--offload sets offload, before or after the positionals, and wins over the JSON's", () => {
  assert.equal(runnerArgs(["build", "{}", "--offload"]).options.offload, true);
  assert.equal(runnerArgs(["--offload", "build", '{"steps": 2}']).options.offload, true);
  assert.equal(runnerArgs(["build", '{"offload": true}']).options.offload, true);
  assert.equal(runnerArgs(["build", '{"offload": false}']).options.offload, false);
  assert.equal(runnerArgs(["build", '{"offload": false}', "--offload"]).options.offload, true);
  assert.deepEqual(runnerArgs(["build", "--offload", "--vae-tiles", "on"]).options, { vaeTiling: "on", offload: true });
});

test("an offload other than true or false, or --offload with a value, is refused", () => {
  assert.throws(() => runnerArgs(["build", '{"offload": 1}']), {
    message: '"offload" 1 in OPTIONS_JSON: give true or false (or --offload)',
  });
  assert.throws(() => runnerArgs(["build", '{"offload": "yes"}']), /"offload" "yes" in OPTIONS_JSON: give true or false/);
  assert.throws(() => runnerArgs(["build", "--offload=yes"]), /--offload/);
});

test("a mode other than auto, on or off, an unknown flag, a non-object or a third argument is refused", () => {
  assert.throws(() => runnerArgs(["build", "{}", "--vae-tiles", "tiles"]), { message: '--vae-tiles "tiles": choose auto, on or off' });
  assert.throws(() => runnerArgs(["build", '{"vaeTiling": true}']), /--vae-tiles true: choose auto, on or off/);
  assert.throws(() => runnerArgs(["build", "{}", "--vae-tile", "on"]), /Unknown option '--vae-tile'/);
  assert.throws(() => runnerArgs(["build", "[1]"]), /OPTIONS_JSON is not a JSON object: \[1\]/);
  assert.throws(() => runnerArgs(["build", "null"]), /OPTIONS_JSON is not a JSON object/);
  assert.throws(() => runnerArgs(["build", "{"]), SyntaxError);
  assert.throws(() => runnerArgs(["build", "{}", "extra"]), /unexpected arguments after OPTIONS_JSON: extra/);
});

const GIB = 2 ** 30;

test("--memory-budget GIB sets memoryBudget in bytes, and wins over the JSON's (bytes)", () => {
  assert.equal(runnerArgs(["build", "{}", "--memory-budget", "4"]).options.memoryBudget, 4 * GIB);
  assert.equal(runnerArgs(["--memory-budget=2.5", "build"]).options.memoryBudget, 2.5 * GIB);
  assert.equal(runnerArgs(["build", `{"memoryBudget": ${3 * GIB}}`]).options.memoryBudget, 3 * GIB);
  assert.equal(runnerArgs(["build", '{"memoryBudget": 1000}', "--memory-budget", "1"]).options.memoryBudget, GIB);
  // null in the JSON: no budget.
  assert.deepEqual(runnerArgs(["build", '{"memoryBudget": null}']).options, { vaeTiling: "auto", offload: false });
});

test("with a budget, offload is left to it unless given; without one it stays false", () => {
  assert.deepEqual(runnerArgs(["build", "--memory-budget", "4"]).options, { vaeTiling: "auto", memoryBudget: 4 * GIB });
  assert.deepEqual(runnerArgs(["build", "--memory-budget", "4", "--offload"]).options, {
    vaeTiling: "auto", offload: true, memoryBudget: 4 * GIB,
  });
  assert.equal(runnerArgs(["build", '{"offload": false, "memoryBudget": 1024}']).options.offload, false);
  assert.deepEqual(runnerArgs(["build", '{"steps": 2}', "--vae-tiles", "on", "--memory-budget", "8"]).options, {
    steps: 2, vaeTiling: "on", memoryBudget: 8 * GIB,
  });
});

test("a budget that is not a positive number is refused in one line", () => {
  for (const bad of ["0", "-1", "four", "", "Infinity"]) {
    assert.throws(() => runnerArgs(["build", `--memory-budget=${bad}`]), {
      message: `--memory-budget ${JSON.stringify(bad)}: give the GPU memory budget in GiB, a positive number`,
    });
  }
  for (const bad of ["0", "-5", '"4"', "true"]) {
    assert.throws(() => runnerArgs(["build", `{"memoryBudget": ${bad}}`]), {
      message: `"memoryBudget" ${bad} in OPTIONS_JSON: give a positive number of bytes, or null`,
    });
  }
});

test("variations are a non-empty list of option objects", () => {
  const variations = [{ scheduler: "euler" }, { scheduler: "ddim", strength: 0.3 }];
  assert.deepEqual(runnerArgs(["build", JSON.stringify({ variations })]).options.variations, variations);
  for (const bad of ["[]", '{"a": 1}', '[{"a": 1}, 2]', '[[1]]', "null"]) {
    assert.throws(() => runnerArgs(["build", `{"variations": ${bad}}`]), /"variations" in OPTIONS_JSON: give a non-empty list of option objects/);
  }
});
