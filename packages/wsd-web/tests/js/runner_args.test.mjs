// The Node runners' command line (node/runner_args.mjs): DIR, OPTIONS_JSON and --vae-tiles.
import assert from "node:assert/strict";
import { test } from "node:test";

import { VAE_TILES, runnerArgs } from "../../src/wsd_web/node/runner_args.mjs";

test("the build, the options, and the VAE decode auto unless asked", () => {
  assert.deepEqual(runnerArgs(["build", '{"steps": 2}']), { dir: "build", options: { steps: 2, vaeTiling: "auto" } });
  assert.deepEqual(runnerArgs(["build"]), { dir: "build", options: { vaeTiling: "auto" } });
  assert.deepEqual(runnerArgs([]), { dir: undefined, options: { vaeTiling: "auto" } });
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

test("a mode other than auto, on or off, an unknown flag, a non-object or a third argument is refused", () => {
  assert.throws(() => runnerArgs(["build", "{}", "--vae-tiles", "tiles"]), { message: '--vae-tiles "tiles": choose auto, on or off' });
  assert.throws(() => runnerArgs(["build", '{"vaeTiling": true}']), /--vae-tiles true: choose auto, on or off/);
  assert.throws(() => runnerArgs(["build", "{}", "--vae-tile", "on"]), /Unknown option '--vae-tile'/);
  assert.throws(() => runnerArgs(["build", "[1]"]), /OPTIONS_JSON is not a JSON object: \[1\]/);
  assert.throws(() => runnerArgs(["build", "null"]), /OPTIONS_JSON is not a JSON object/);
  assert.throws(() => runnerArgs(["build", "{"]), SyntaxError);
  assert.throws(() => runnerArgs(["build", "{}", "extra"]), /unexpected arguments after OPTIONS_JSON: extra/);
});
