// Test driver for tests/test_torch_random.py (not a node:test file).
//
// stdin:  {"cases": [{"seed": "<decimal>", "shapes": [[...], ...]}, ...]}
// stdout: {"cases": [["<base64 of little-endian float32>", ...], ...]}
//
// Every case is one generator, manual_seed(seed), and its shapes are drawn
// from it in order, like successive torch.randn(shape, generator=g) calls.
// Seeds up to 2**53 are passed as numbers, larger ones as bigints, so both
// seed types are exercised.
import { TorchGenerator } from "../../src/wsd_web/static/js/torch_random.js";

/**
 * @typedef {object} Case
 * @property {string} seed
 * @property {number[][]} shapes
 */

/** @returns {Promise<string>} */
async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/** @type {{cases: Case[]}} */
const input = JSON.parse(await readStdin());
const results = input.cases.map(({ seed, shapes }) => {
  const big = BigInt(seed);
  const g = new TorchGenerator(big <= 2n ** 53n ? Number(big) : big);
  return shapes.map((shape) => {
    const values = g.randn(shape);
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64");
  });
});
process.stdout.write(JSON.stringify({ cases: results }));
