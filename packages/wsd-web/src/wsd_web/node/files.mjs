// Reading a build's files in Node: the paths come from the build's own
// manifest and tensor-cache index, so they are confined to the build directory
// (the browser gets the same confinement from same-origin relative URLs).
import { readFile } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";

/**
 * A reader of files under `dir`: `read("shard-0.bin")` gives the bytes of
 * `dir/shard-0.bin`; a path that leads outside `dir` (`../x`, `/etc/x`) is refused.
 * @param {string} dir
 * @returns {(path: string) => Promise<Uint8Array>}
 */
export function buildFiles(dir) {
  const root = resolve(dir);
  return async (path) => {
    const full = resolve(root, path);
    const rel = relative(root, full);
    if (rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new Error(`${JSON.stringify(path)} is not a file inside ${root}: refusing to read it`);
    }
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- confined to root just above
    return new Uint8Array(await readFile(full));
  };
}
