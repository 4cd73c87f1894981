import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { installedPackages, nodeModulesProblems, vendorProblems } from "../../scripts/check_lock.mjs";
import { MODULES_DIR, VENDOR_DIR } from "../../scripts/vendor.mjs";
import { buildFiles } from "../../src/wsd_web/node/files.mjs";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * A scratch directory, removed after `fn`.
 * @param {(dir: string) => void | Promise<void>} fn
 */
async function inTemp(fn) {
  const dir = mkdtempSync(join(tmpdir(), "wsd-lock-"));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Write `text` to `path` (a file in a scratch directory), making its directory.
 * @param {string} path
 * @param {string} text
 */
function writeText(path, text) {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- under the test's scratch directory
  mkdirSync(join(path, ".."), { recursive: true });
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- under the test's scratch directory
  writeFileSync(path, text);
}

/**
 * @param {string} path
 * @param {unknown} value
 */
const writeJson = (path, value) => writeText(path, JSON.stringify(value));

/**
 * A project locking `a@1.0.0` (with a nested `b@2.0.0`) and the node_modules
 * npm ci would make from it.
 * @param {string} dir
 */
function project(dir) {
  const a = { version: "1.0.0", resolved: "https://registry.example/a-1.0.0.tgz", integrity: "sha512-AAA" };
  const b = { version: "2.0.0", resolved: "https://registry.example/b-2.0.0.tgz", integrity: "sha512-BBB" };
  const packages = {
    "": { name: "p", dependencies: { a: "1.0.0" } },
    "node_modules/a": a,
    "node_modules/a/node_modules/@s/b": b,
  };
  writeJson(join(dir, "package.json"), { name: "p", dependencies: { a: "1.0.0" } });
  writeJson(join(dir, "package-lock.json"), { lockfileVersion: 3, packages });
  writeJson(join(dir, "node_modules", ".package-lock.json"), { lockfileVersion: 3, packages });
  writeJson(join(dir, "node_modules", "a", "package.json"), { name: "a", version: "1.0.0" });
  writeJson(join(dir, "node_modules", "a", "node_modules", "@s", "b", "package.json"), { name: "@s/b", version: "2.0.0" });
}

test("this package's node_modules and vendor directory match its lock", () => {
  assert.deepEqual(nodeModulesProblems(ROOT), []);
  assert.deepEqual(vendorProblems(), []);
  assert.ok(installedPackages(ROOT).includes("node_modules/@mlc-ai/web-runtime"));
});

test("a package npm did not install from the lock is named", () =>
  inTemp((dir) => {
    project(dir);
    assert.deepEqual(installedPackages(dir), ["node_modules/a", "node_modules/a/node_modules/@s/b"]);
    assert.deepEqual(nodeModulesProblems(dir), []);

    writeJson(join(dir, "node_modules", "extra", "package.json"), { name: "extra", version: "0.0.1" });
    writeJson(join(dir, "node_modules", "a", "package.json"), { name: "a", version: "1.0.1" });
    const record = join(dir, "node_modules", ".package-lock.json");
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- under the test's scratch directory
    writeText(record, readFileSync(record, "utf8").replace('"sha512-BBB"', '"sha512-EVIL"'));
    assert.deepEqual(nodeModulesProblems(dir), [
      "node_modules/a is version 1.0.1, the lock says 1.0.0",
      "node_modules/a/node_modules/@s/b was installed from integrity sha512-EVIL, the lock says sha512-BBB",
      "node_modules/extra is installed but not in package-lock.json",
    ]);
    rmSync(join(dir, "node_modules", "a", "node_modules"), { recursive: true });
    assert.deepEqual(nodeModulesProblems(dir).slice(-1), ["node_modules/a/node_modules/@s/b is locked but not installed"]);
  }));

test("package.json out of step with the lock is named", () =>
  inTemp((dir) => {
    project(dir);
    writeJson(join(dir, "package.json"), { name: "p", dependencies: { a: "1.0.0", c: "3.0.0" } });
    assert.deepEqual(nodeModulesProblems(dir), [
      "package.json's dependencies differ from package-lock.json's: run `npm install` and commit the lock",
    ]);
  }));

test("a vendored file that no locked package gives, or that was changed, is named", () =>
  inTemp((dir) => {
    const vendor = join(dir, "vendor");
    cpSync(VENDOR_DIR, vendor, { recursive: true });
    assert.deepEqual(vendorProblems({ vendor }), []);
    writeText(join(vendor, "tvmjs", "extra.wasm"), "\0asm");
    writeText(join(vendor, "tokenizers", "index.js"), "globalThis.tokenizers = {};\n");
    rmSync(join(vendor, "tvmjs", "NOTICE"));
    assert.deepEqual(vendorProblems({ vendor, modules: MODULES_DIR }), [
      "static/vendor/tokenizers/index.js differs from what the locked package gives: run `npm run vendor`",
      "static/vendor/tvmjs/extra.wasm does not come from a locked package (scripts/vendor.mjs does not make it)",
      "static/vendor/tvmjs/NOTICE is missing: run `npm run vendor`",
    ]);
  }));

test("the Node runners read a build's files only inside the build directory", () =>
  inTemp(async (dir) => {
    writeText(join(dir, "secret.txt"), "not part of the build");
    writeText(join(dir, "build", "sub", "manifest.json"), "{}");
    const read = buildFiles(join(dir, "build"));
    assert.equal(new TextDecoder().decode(await read("sub/manifest.json")), "{}");
    assert.equal(new TextDecoder().decode(await read("./sub/../sub/manifest.json")), "{}");
    for (const outside of ["../secret.txt", join(dir, "secret.txt"), "sub/../../secret.txt", ".", ""]) {
      await assert.rejects(read(outside), /is not a file inside .*: refusing to read it/, outside);
    }
  }));
