// Which build a model library belongs to, and whether this app's tvmjs can run it.
// wsd-compile stamps every .wasm with a custom section "wsd.build" (JSON:
// build_id, runtime) and writes the same build_id and runtime into
// manifest.json; a mismatch means the server, a CDN or a cache mixed files of
// two builds, which is a different problem from a corrupted download.

/** The tvmjs (npm @mlc-ai/web-runtime) version vendored into this app; a test keeps it equal to the lockfile's. */
export const TVMJS_VERSION = "0.27.0-dev0";

/** The custom section wsd-compile writes. */
export const BUILD_SECTION = "wsd.build";

/**
 * @typedef {object} BuildStamp
 * @property {string} build_id
 * @property {{tvm: string}} runtime
 * @property {string} [quantize]  The weights' quantization the library reads (none, int8, int4).
 */

/** A manifest and a library of different builds. */
export class BuildMismatchError extends Error {
  /**
   * @param {string} file
   * @param {string} manifestBuild
   * @param {string} fileBuild
   */
  constructor(file, manifestBuild, fileBuild) {
    super(
      `manifest.json is from build ${manifestBuild} but ${file} is from build ${fileBuild}: the server ` +
      "(or a cache between it and you) holds files of two builds. Wait for the deployment to finish and " +
      "retry, or redeploy the whole model directory",
    );
    this.name = "BuildMismatchError";
    this.file = file;
    this.manifestBuild = manifestBuild;
    this.fileBuild = fileBuild;
  }
}

/**
 * @param {Uint8Array} bytes
 * @param {number} pos
 * @returns {[number, number]} value and the position after it
 */
function leb128(bytes, pos) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (pos >= bytes.length || scale > 2 ** 35) throw new Error("truncated LEB128");
    const byte = bytes[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (!(byte & 0x80)) return [value, pos];
  }
}

/**
 * The wsd.build stamp of a WebAssembly module's bytes; null when it has none or is not WebAssembly.
 * @param {Uint8Array} bytes
 * @returns {BuildStamp | null}
 */
export function readBuildStamp(bytes) {
  const magic = [0x00, 0x61, 0x73, 0x6d];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) return null;
  let pos = 8;
  try {
    while (pos < bytes.length) {
      const id = bytes[pos];
      const [size, body] = leb128(bytes, pos + 1);
      const end = body + size;
      if (end > bytes.length) return null;
      if (id === 0) {
        const [length, nameAt] = leb128(bytes, body);
        const name = new TextDecoder().decode(bytes.subarray(nameAt, nameAt + length));
        if (name === BUILD_SECTION) {
          const stamp = JSON.parse(new TextDecoder().decode(bytes.subarray(nameAt + length, end)));
          return typeof stamp?.build_id === "string" ? stamp : null;
        }
      }
      pos = end;
    }
  } catch {
    return null;
  }
  return null;
}

/**
 * "major.minor" of a version string ("0.27.0.post1" -> "0.27").
 * @param {string} version
 */
function series(version) {
  return version.split(/[.+-]/).slice(0, 2).join(".");
}

/**
 * Why this app's tvmjs cannot run a library linked with `runtime`; null when it can.
 * @param {{tvm: string} | undefined} runtime  The manifest's (or the stamp's) runtime.
 * @param {string} [tvmjs]  The app's tvmjs version.
 * @returns {string | null}
 */
export function runtimeMismatch(runtime, tvmjs = TVMJS_VERSION) {
  if (!runtime || typeof runtime.tvm !== "string") {
    return "the manifest does not say which TVM runtime the model was linked with: rebuild it with the current wsd-compile";
  }
  if (series(runtime.tvm) !== series(tvmjs)) {
    return (
      `the model was linked with the TVM ${runtime.tvm} web runtime, but this app ships tvmjs ${tvmjs}: ` +
      "serve it with the wsd-web release that matches the wsd-compile that built it, or rebuild the model"
    );
  }
  return null;
}

/**
 * Check a downloaded library against the manifest before it is verified or instantiated:
 * a library of another build throws a BuildMismatchError (more telling than a checksum mismatch).
 * @param {string} file
 * @param {Uint8Array} bytes
 * @param {{build_id: string, runtime: {tvm: string}, model?: {quantize?: string}}} manifest
 */
export function checkBuildStamp(file, bytes, manifest) {
  const stamp = readBuildStamp(bytes);
  if (stamp && stamp.build_id !== manifest.build_id) {
    throw new BuildMismatchError(file, manifest.build_id, stamp.build_id);
  }
  const stated = manifest.model?.quantize ?? "none";
  if (stamp && typeof stamp.quantize === "string" && stamp.quantize !== stated) {
    throw new Error(
      `${file} was built for ${stamp.quantize} weights but the manifest says ${stated}: ` +
      `serve the manifest.json that wsd-compile wrote with it, or rebuild with wsd-compile --quantize ${stamp.quantize}`,
    );
  }
  const problem = stamp ? runtimeMismatch(stamp.runtime) : null;
  if (problem) throw new Error(`${file}: ${problem}`);
}
