// Checks that what npm installed is exactly what package-lock.json locks, and
// that every file the app ships under static/vendor comes from a locked package:
// - package.json's dependencies are the lock's (npm ci refuses otherwise, but say so first);
// - every package in node_modules (nested ones too) is in the lock at the locked
//   version, every locked package is installed (bar optional ones for other
//   platforms), and npm's record of what it installed (node_modules/.package-lock.json)
//   names the same tarballs and integrity hashes as the lock;
// - the vendor directory holds exactly what scripts/vendor.mjs makes from the
//   locked runtime dependencies, byte for byte, and nothing else.
//   node scripts/check_lock.mjs        (npm run check-lock)
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { COPIED, MODULES_DIR, VENDOR_DIR, vendoredFiles } from "./vendor.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * @typedef {object} LockEntry
 * @property {string} [version]
 * @property {string} [resolved]
 * @property {string} [integrity]
 * @property {boolean} [optional]
 * @property {boolean} [dev]
 * @property {boolean} [link]
 * @property {Record<string, string>} [dependencies]
 * @property {Record<string, string>} [devDependencies]
 */

/**
 * @param {string} path
 * @returns {any}
 */
function readJson(path) {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- a path this script composed under the package
  return JSON.parse(readFileSync(path, "utf8"));
}

/**
 * Every package directory under `root/node_modules`, nested ones included, as
 * lockfile keys (`node_modules/a`, `node_modules/@s/b/node_modules/c`).
 * @param {string} root
 * @returns {string[]}
 */
export function installedPackages(root) {
  /** @type {string[]} */
  const found = [];
  /** @param {string} rel  a package directory, or "" for the root */
  const visit = (rel) => {
    const modules = join(root, rel, "node_modules");
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- walking our own node_modules
    if (!existsSync(modules)) return;
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- walking our own node_modules
    for (const entry of readdirSync(modules, { withFileTypes: true })) {
      if (entry.name.startsWith(".") || !(entry.isDirectory() || entry.isSymbolicLink())) continue;
      const names = entry.name.startsWith("@")
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- walking our own node_modules
        ? readdirSync(join(modules, entry.name)).map((scoped) => `${entry.name}/${scoped}`)
        : [entry.name];
      for (const name of names) {
        const key = `${rel ? `${rel}/` : ""}node_modules/${name}`;
        found.push(key);
        visit(key);
      }
    }
  };
  visit("");
  return found.sort();
}

/**
 * What is wrong with `root/node_modules` against `root/package-lock.json`.
 * @param {string} root  a package directory (package.json, package-lock.json, node_modules)
 * @returns {string[]}
 */
export function nodeModulesProblems(root) {
  /** @type {string[]} */
  const problems = [];
  const lock = readJson(join(root, "package-lock.json"));
  /** @type {Record<string, LockEntry>} */
  const locked = lock.packages ?? {};
  const manifest = readJson(join(root, "package.json"));
  const top = locked[""] ?? {};
  for (const field of /** @type {const} */ (["dependencies", "devDependencies"])) {
    const declared = JSON.stringify(Object.entries(manifest[field] ?? {}).sort());
    const inLock = JSON.stringify(Object.entries(top[field] ?? {}).sort());
    if (declared !== inLock) {
      problems.push(`package.json's ${field} differ from package-lock.json's: run \`npm install\` and commit the lock`);
    }
  }
  const installed = installedPackages(root);
  /** @type {Record<string, LockEntry>} */
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- npm's record in our node_modules
  const record = existsSync(join(root, "node_modules", ".package-lock.json"))
    ? (readJson(join(root, "node_modules", ".package-lock.json")).packages ?? {})
    : {};
  for (const key of installed) {
    if (!Object.hasOwn(locked, key)) {
      problems.push(`${key} is installed but not in package-lock.json`);
      continue;
    }
    const want = locked[key];
    const have = readJson(join(root, key, "package.json")).version;
    if (!want.link && have !== want.version) {
      problems.push(`${key} is version ${have}, the lock says ${want.version}`);
    }
    const npmSays = Object.hasOwn(record, key) ? record[key] : undefined;
    for (const field of /** @type {const} */ (["resolved", "integrity"])) {
      if (want[field] && npmSays?.[field] !== want[field]) {
        problems.push(`${key} was installed from ${field} ${npmSays?.[field] ?? "(unknown)"}, the lock says ${want[field]}`);
      }
    }
  }
  const present = new Set(installed);
  for (const [key, entry] of Object.entries(locked)) {
    if (key !== "" && !entry.optional && !present.has(key)) {
      problems.push(`${key} is locked but not installed`);
    }
  }
  return problems;
}

/**
 * Every file under `dir`, relative to it with "/" separators.
 * @param {string} dir
 * @returns {string[]}
 */
function filesUnder(dir) {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the vendor directory
  if (!existsSync(dir)) return [];
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the vendor directory
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => !entry.isDirectory())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join("/"))
    .sort();
}

/**
 * What is wrong with the vendor directory: files that scripts/vendor.mjs does
 * not make from the locked packages, missing files, files that differ.
 * @param {{root?: string, modules?: string, vendor?: string}} [where]
 * @returns {string[]}
 */
export function vendorProblems({ root = ROOT, modules = MODULES_DIR, vendor = VENDOR_DIR } = {}) {
  /** @type {string[]} */
  const problems = [];
  const lock = readJson(join(root, "package-lock.json"));
  const runtime = Object.keys(lock.packages?.[""]?.dependencies ?? {});
  for (const [from] of COPIED) {
    if (!runtime.some((name) => from.startsWith(`${name}/`))) {
      problems.push(`scripts/vendor.mjs copies ${from}, which is not from a locked runtime dependency`);
    }
  }
  const expected = vendoredFiles(modules);
  const actual = filesUnder(vendor);
  for (const rel of actual) {
    const want = expected.get(rel);
    if (want === undefined) {
      problems.push(`static/vendor/${rel} does not come from a locked package (scripts/vendor.mjs does not make it)`);
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a file found under the vendor directory
    } else if (!readFileSync(join(vendor, rel)).equals(want)) {
      problems.push(`static/vendor/${rel} differs from what the locked package gives: run \`npm run vendor\``);
    }
  }
  for (const rel of expected.keys()) {
    if (!actual.includes(rel)) problems.push(`static/vendor/${rel} is missing: run \`npm run vendor\``);
  }
  return problems;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const problems = [...nodeModulesProblems(ROOT), ...vendorProblems()];
  if (problems.length > 0) {
    process.stderr.write(
      `${problems.map((p) => `check_lock: ${p}`).join("\n")}\n` +
        "Reinstall from the lock with `npm ci && npm run vendor` in packages/wsd-web " +
        "(scripts/setup.sh does); change dependencies with `npm install --save-exact` and commit package-lock.json.\n",
    );
    process.exit(1);
  }
  process.stdout.write("node_modules and static/vendor match package-lock.json\n");
}
