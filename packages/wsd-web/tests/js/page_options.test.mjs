// The page's settings from its address (static/js/page_options.js): ?vae-tiles= and ?offload=.
import assert from "node:assert/strict";
import { test } from "node:test";

import { VAE_TILES, applySettings, askedSettings, settingOptions } from "../../src/wsd_web/static/js/page_options.js";

const ask = (/** @type {string} */ search) => askedSettings(new URLSearchParams(search));
const controls = () => ({ vaeTiles: { value: "auto" }, offload: { checked: false } });

test("nothing asked: the controls keep their defaults (auto, no offload)", () => {
  assert.deepEqual(ask(""), { vaeTiles: null, offload: null, error: null });
  const c = controls();
  applySettings(c, ask("model=x/"));
  assert.deepEqual(settingOptions(c), { vaeTiling: "auto", offload: false });
});

test("?vae-tiles= and ?offload=1|0 set the controls, and generate reads them", () => {
  for (const mode of VAE_TILES) {
    const c = controls();
    applySettings(c, ask(`vae-tiles=${mode}&offload=1`));
    assert.deepEqual(settingOptions(c), { vaeTiling: mode, offload: true });
  }
  const c = { vaeTiles: { value: "on" }, offload: { checked: true } };
  applySettings(c, ask("offload=0"));
  assert.deepEqual(settingOptions(c), { vaeTiling: "on", offload: false });
});

test("a bad value is one line naming the choices, and leaves its control as it is", () => {
  assert.equal(ask("offload=yes").error, "?offload=yes: choose 1 or 0");
  assert.equal(ask("offload=").error, "?offload=: choose 1 or 0");
  assert.equal(ask("vae-tiles=tiles&offload=1").error, "?vae-tiles=tiles: choose auto, on or off");
  const c = controls();
  applySettings(c, ask("vae-tiles=tiles&offload=true"));
  assert.deepEqual(settingOptions(c), { vaeTiling: "auto", offload: false });
});
