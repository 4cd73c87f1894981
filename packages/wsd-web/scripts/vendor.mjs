// Copies the app's third-party JS from node_modules (pinned by package-lock.json)
// into the Python package's data, so `wsd-web serve` ships it with the app.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "src", "wsd_web", "static", "vendor");

/** @type {Array<[string, string]>} [from node_modules, to vendor] */
const files = [
  ["@mlc-ai/web-runtime/lib/index.js", "tvmjs/index.js"],
  ["@mlc-ai/web-runtime/LICENSE", "tvmjs/LICENSE"],
  ["@mlc-ai/web-runtime/NOTICE", "tvmjs/NOTICE"],
];
for (const [from, to] of files) {
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(join(root, "node_modules", from), join(vendor, to));
}
// The tvmjs bundle is UMD: a <script> in a page, CommonJS under Node (where
// its emscripten part needs `require`), whatever this package's own "type" says.
writeFileSync(join(vendor, "tvmjs", "package.json"), '{"type": "commonjs"}\n');
