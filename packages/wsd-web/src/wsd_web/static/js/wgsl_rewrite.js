// WGSL that TVM's code generator cannot write, put in when a shader is created.

/** The WGSL enable directive of subgroup matrices, which TVM's code generator cannot print. */
export const SUBGROUP_MATRIX_ENABLE = "enable chromium_experimental_subgroup_matrix;";

/** What marks the tensor-core kernels with workgroup tiles (wsd_compile.kernels.subgroup_tiles). */
const TILES_MARKER = "var<workgroup> wsd_ta";

/**
 * Vector loads for the workgroup tiles' operands. TVM declares every storage
 * buffer as an array of scalars, so the tiles' kernels gather each vector of
 * four halves from four loads: `vec4<f16>(A_ptr[X + 0u], ..., A_ptr[X + 3u])`,
 * where `X` is a multiple of 4. Where every access to `A_ptr` (and `B_ptr`) is
 * such a gather, the buffer is declared as `array<vec4<f16>>` and each gather
 * becomes one load, `A_ptr[(X) / 4u]` (about 1.2x the product's speed on the
 * H200: docs/kernels.md). Any other shader, or a buffer with other accesses,
 * is returned as it was.
 * @param {string} code
 * @returns {string}
 */
export function vectorizeTileLoads(code) {
  if (!code.includes(TILES_MARKER)) return code;
  let out = code;
  for (const buffer of ["A_ptr", "B_ptr"]) {
    const declaration = `var<storage, read> ${buffer} : array<f16>;`;
    if (!out.includes(declaration)) continue;
    const lanes = [1, 2, 3].map((q) => `${buffer}\\[\\2 \\+ ${q}u\\]`).join(", ");
    // eslint-disable-next-line security/detect-non-literal-regexp -- built from the two names above
    const gather = new RegExp(`vec4<f16>\\((${buffer})\\[([^\\[\\]]+?) \\+ 0u\\], ${lanes}\\)`, "g");
    let gathers = 0;
    const rewritten = out.replace(gather, (_, name, at) => {
      gathers += 1;
      return `${name}[(${at}) / 4u]`;
    });
    // Every access of the buffer must be a gather: else it stays scalar.
    if (gathers === 0 || rewritten.split(`${buffer}[`).length - 1 !== gathers) continue;
    out = rewritten.replace(declaration, `var<storage, read> ${buffer} : array<vec4<f16>>;`);
  }
  return out;
}

/** A vector of four halves stored into an im2col matrix as TVM writes it: one line a lane. */
const VECTOR_STORE = /^(\s*)(\w*im2col\w*_ptr)\[(.+) \+ 0\] = (vec4<f16>\(.*\))\[0\];$/;

/**
 * Vector stores of four halves into im2col matrices. TVM writes a store of a
 * `vec4<f16>` into an array of halves as four lines, `NAME[X + q] =
 * vec4<f16>(...)[q];` for q = 0 to 3. The im2col kernels
 * (wsd_compile.kernels.im2col) store each tap of four consecutive pixels so,
 * at an `X` that is a multiple of 4. Where every access to such a matrix
 * (a buffer named `*im2col*_ptr`) is such a store, it is declared as
 * `array<vec4<f16>>` and each store becomes one line, `NAME[(X) / 4] =
 * vec4<f16>(...);`: a quarter of the store instructions. Anything else is left
 * as it was.
 * @param {string} code
 * @returns {string}
 */
export function vectorizeStores(code) {
  if (!code.includes(")[3];")) return code;
  const lines = code.split("\n");
  /** @type {string[]} */
  const out = [];
  /** @type {Map<string, number>} */
  const stores = new Map();
  for (let i = 0; i < lines.length; i += 1) {
    const found = VECTOR_STORE.exec(lines[i]);
    const lanes = found && [1, 2, 3].map((q) => `${found[1]}${found[2]}[${found[3]} + ${q}] = ${found[4]}[${q}];`);
    if (!found || !lanes || lanes.some((lane, q) => lines[i + 1 + q] !== lane)) {
      out.push(lines[i]);
      continue;
    }
    const [, indent, buffer, at, value] = found;
    out.push(`${indent}${buffer}[(${at}) / 4] = ${value};`);
    stores.set(buffer, (stores.get(buffer) ?? 0) + 1);
    i += 3;
  }
  let result = out.join("\n");
  for (const [buffer, count] of stores) {
    const declaration = `var<storage, read_write> ${buffer} : array<f16>;`;
    // Every access of the buffer must be a vector store: else the original stays.
    if (!result.includes(declaration) || result.split(`${buffer}[`).length - 1 !== count) return code;
    result = result.replace(declaration, `var<storage, read_write> ${buffer} : array<vec4<f16>>;`);
  }
  return result;
}

/**
 * A shader as the device gets it: the enable directive of subgroup matrices
 * where the kernel uses them, the tiles' vector loads (vectorizeTileLoads) and
 * vector stores (vectorizeStores).
 * @param {string} code  WGSL as TVM wrote it.
 * @returns {string}
 */
export function completeShader(code) {
  const needs = code.includes("subgroup_matrix_") && !code.includes(SUBGROUP_MATRIX_ENABLE);
  return vectorizeStores(vectorizeTileLoads(needs ? `${SUBGROUP_MATRIX_ENABLE}\n${code}` : code));
}
