// Copies the app's third-party JS from node_modules (pinned by package-lock.json)
// into the Python package's data, so `wsd-web serve` ships it with the app.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "node_modules");
const vendor = join(root, "src", "wsd_web", "static", "vendor");

/** @type {Array<[string, string]>} [from node_modules, to vendor] */
const files = [
  ["@mlc-ai/web-runtime/lib/index.js", "tvmjs/index.js"],
  ["@mlc-ai/web-runtime/LICENSE", "tvmjs/LICENSE"],
  ["@mlc-ai/web-runtime/NOTICE", "tvmjs/NOTICE"],
  // HF tokenizers compiled to wasm. The wasm is embedded in index.js as a
  // base64 data: URI and instantiated from memory: there is no .wasm to fetch.
  ["@mlc-ai/web-tokenizers/lib/index.js", "tokenizers/index.js"],
];
for (const [from, to] of files) {
  mkdirSync(dirname(join(vendor, to)), { recursive: true });
  cpSync(join(modules, from), join(vendor, to));
}
// Both bundles are UMD: a <script> in a page (globals `tvmjs`, `tokenizers`),
// CommonJS under Node (where their emscripten part needs `require`), whatever
// this package's own "type" (or web-tokenizers' "module") says.
for (const dir of ["tvmjs", "tokenizers"]) {
  writeFileSync(join(vendor, dir, "package.json"), '{"type": "commonjs"}\n');
}

// web-tokenizers ships no LICENSE file (its package.json says Apache-2.0): write
// one with the Apache License 2.0 terms, taken from web-runtime's LICENSE (the
// same license text, before that file's TVM-specific appendix).
const tokenizers = JSON.parse(readFileSync(join(modules, "@mlc-ai/web-tokenizers/package.json"), "utf8"));
if (tokenizers.license !== "Apache-2.0") {
  throw new Error(`@mlc-ai/web-tokenizers is now licensed ${tokenizers.license}: review tokenizers/LICENSE`);
}
const apache = readFileSync(join(modules, "@mlc-ai/web-runtime/LICENSE"), "utf8");
const end = apache.indexOf("END OF TERMS AND CONDITIONS");
if (!apache.includes("Apache License") || end < 0) throw new Error("web-runtime's LICENSE is not the Apache License 2.0");
writeFileSync(
  join(vendor, "tokenizers", "LICENSE"),
  `${tokenizers.name} ${tokenizers.version} (${tokenizers.homepage})
is licensed under the Apache License 2.0 (its npm package names the license
but ships no LICENSE file). It wraps and compiles to WebAssembly the
HuggingFace tokenizers library (https://github.com/huggingface/tokenizers,
Apache-2.0, with its Rust dependencies under their own permissive licenses)
and sentencepiece (https://github.com/google/sentencepiece, Apache-2.0); the
bundle also contains tslib (0BSD, its notice is kept in index.js).

${apache.slice(0, end + "END OF TERMS AND CONDITIONS".length)}
`,
);
