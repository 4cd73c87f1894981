// The Node runners' command line (node/runner_args.mjs): DIR, OPTIONS_JSON, --vae-tiles and --offload.
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
