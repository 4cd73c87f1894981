// Copies the app's third-party JS from node_modules (pinned by package-lock.json)
// into the Python package's data, so `wsd-web serve` ships it with the app.
// `vendoredFiles` says what the vendor directory must hold, byte for byte;
// scripts/check_lock.mjs holds the directory to it.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const MODULES_DIR = join(root, "node_modules");
export const VENDOR_DIR = join(root, "src", "wsd_web", "static", "vendor");

/** @type {ReadonlyArray<readonly [string, string]>} [from node_modules, to vendor] */
export const COPIED = [
  ["@mlc-ai/web-runtime/lib/index.js", "tvmjs/index.js"],
  ["@mlc-ai/web-runtime/LICENSE", "tvmjs/LICENSE"],
  ["@mlc-ai/web-runtime/NOTICE", "tvmjs/NOTICE"],
  // HF tokenizers compiled to wasm. The wasm is embedded in index.js as a
  // base64 data: URI and instantiated from memory: there is no .wasm to fetch.
  ["@mlc-ai/web-tokenizers/lib/index.js", "tokenizers/index.js"],
];

/**
 * Every file of the vendor directory (path relative to it -> bytes), made from
 * the packages installed in `modules`.
 * @param {string} [modules]
 * @returns {Map<string, Buffer>}
 */
export function vendoredFiles(modules = MODULES_DIR) {
  /** @param {string} rel */
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- fixed paths under node_modules (COPIED)
  const read = (rel) => readFileSync(join(modules, rel));
  /** @type {Map<string, Buffer>} */
  const out = new Map();
  for (const [from, to] of COPIED) out.set(to, read(from));
  // Both bundles are UMD: a <script> in a page (globals `tvmjs`, `tokenizers`),
  // CommonJS under Node (where their emscripten part needs `require`), whatever
  // this package's own "type" (or web-tokenizers' "module") says.
  for (const dir of ["tvmjs", "tokenizers"]) {
    out.set(`${dir}/package.json`, Buffer.from('{"type": "commonjs"}\n'));
  }

  // web-tokenizers ships no LICENSE file (its package.json says Apache-2.0): write
  // one with the Apache License 2.0 terms, taken from web-runtime's LICENSE (the
  // same license text, before that file's TVM-specific appendix).
  const tokenizers = JSON.parse(read("@mlc-ai/web-tokenizers/package.json").toString("utf8"));
  if (tokenizers.license !== "Apache-2.0") {
    throw new Error(`@mlc-ai/web-tokenizers is now licensed ${tokenizers.license}: review tokenizers/LICENSE`);
  }
  const apache = read("@mlc-ai/web-runtime/LICENSE").toString("utf8");
  const end = apache.indexOf("END OF TERMS AND CONDITIONS");
  if (!apache.includes("Apache License") || end < 0) throw new Error("web-runtime's LICENSE is not the Apache License 2.0");
  out.set(
    "tokenizers/LICENSE",
    Buffer.from(`${tokenizers.name} ${tokenizers.version} (${tokenizers.homepage})
is licensed under the Apache License 2.0 (its npm package names the license
but ships no LICENSE file). It wraps and compiles to WebAssembly the
HuggingFace tokenizers library (https://github.com/huggingface/tokenizers,
Apache-2.0, with its Rust dependencies under their own permissive licenses)
and sentencepiece (https://github.com/google/sentencepiece, Apache-2.0); the
bundle also contains tslib (0BSD, its notice is kept in index.js).

${apache.slice(0, end + "END OF TERMS AND CONDITIONS".length)}
`),
  );
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const [rel, bytes] of vendoredFiles()) {
    const target = join(VENDOR_DIR, rel);
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- VENDOR_DIR + a fixed name from vendoredFiles
    mkdirSync(dirname(target), { recursive: true });
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- VENDOR_DIR + a fixed name from vendoredFiles
    writeFileSync(target, bytes);
  }
}
