// The WGSL the tensor-core probe (probe_subgroup_matrix.mjs) times: wsd's
// one-subgroup kernel and its variants, shared workgroup tiles (plain and
// pipelined), and a scalar baseline. Hand-written shaders, not part of a build.
/**
 * One subgroup (a workgroup of 32) computes a (16*TM) x (16*TN) block of C
 * from A and B in storage, 16x16x16 matrices with f32 sums. `conv`: the
 * layouts of wsd's convolution kernel, A stored [K, M] (the im2col) and B
 * [N, K] (the OIHW weight), both loaded column-major.
 * @param {number} M @param {number} N @param {number} K @param {number} TM @param {number} TN
 * @param {boolean} [conv]
 */
export function subgroupMatrixShader(M, N, K, TM, TN, conv = false) {
  const accs = [];
  const body = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) accs.push(`var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`);
  }
  for (let i = 0; i < TM; i++) {
    const at = conv ? `k * ${M}u + row + ${16 * i}u, true, ${M}u` : `(row + ${16 * i}u) * ${K}u + k, false, ${K}u`;
    body.push(`let a_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&a, ${at});`);
  }
  for (let j = 0; j < TN; j++) {
    const at = conv ? `(col + ${16 * j}u) * ${K}u + k, true, ${K}u` : `k * ${N}u + col + ${16 * j}u, false, ${N}u`;
    body.push(`let b_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&b, ${at});`);
  }
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) body.push(`acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${i}, b_${j}, acc_${i}_${j});`);
  }
  const stores = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN; j++) {
      stores.push(`subgroupMatrixStore(&c, (row + ${16 * i}u) * ${N}u + col + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`);
    }
  }
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg : vec3<u32>) {
  let row = wg.y * ${16 * TM}u;
  let col = wg.x * ${16 * TN}u;
  ${accs.join("\n  ")}
  for (var k = 0u; k < ${K}u; k += 16u) {
    ${body.join("\n    ")}
  }
  ${stores.join("\n  ")}
}`;
}

/**
 * The variants of wsd's kernel `--variants` times: its loads straight from
 * storage (`conv`: its layouts) and its products, in another order or with
 * sy x sx subgroups a workgroup (no workgroup memory): subgroup s =
 * local_invocation_index / 32 owns the (16 tm) x (16 tn) block (wg.y sy + s / sx,
 * wg.x sx + s % sx) of C. `order` "plain": a 16-step's loads, then its products;
 * "prefetch": the loads of step k + 16 before the products of step k, the last
 * step peeled; "unroll2": steps of 32, both 16-steps' loads, then the products.
 * sy x sx > 1: Tint's uniformity diagnostic off, as in sharedTileShader.
 * @param {number} M @param {number} N @param {number} K
 * @param {{tm: number, tn: number, sy: number, sx: number, order: string}} t
 * @param {boolean} conv
 */
export function variantShader(M, N, K, { tm, tn, sy, sx, order }, conv) {
  const multi = sy * sx > 1;
  /** @type {number[][]} */
  const pairs = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) pairs.push([i, j]);
  /** The tiles of the 16-step at `k` (a u32 expression) into `${decl} ${p}a_i` and `${p}b_j`. */
  const loads = (/** @type {string} */ decl, /** @type {string} */ p, /** @type {string} */ k) => {
    const kk = k.includes(" ") ? `(${k})` : k;
    const as = Array.from({ length: tm }, (_, i) => `${decl} ${p}a_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&a, ${
      conv ? `${kk} * ${M}u + row + ${16 * i}u, true, ${M}u` : `(row + ${16 * i}u) * ${K}u + ${k}, false, ${K}u`});`);
    const bs = Array.from({ length: tn }, (_, j) => `${decl} ${p}b_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&b, ${
      conv ? `(col + ${16 * j}u) * ${K}u + ${k}, true, ${K}u` : `${kk} * ${N}u + col + ${16 * j}u, false, ${N}u`});`);
    return [...as, ...bs];
  };
  const products = (/** @type {string} */ p) =>
    pairs.map(([i, j]) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(${p}a_${i}, ${p}b_${j}, acc_${i}_${j});`);
  const rotate = [...Array.from({ length: tm }, (_, i) => `a_${i} = na_${i};`), ...Array.from({ length: tn }, (_, j) => `b_${j} = nb_${j};`)];
  const prefetch = order === "prefetch";
  const body = prefetch ? [...loads("let", "n", "k + 16u"), ...products(""), ...rotate]
    : order === "unroll2" ? [...loads("let", "", "k"), ...loads("let", "n", "k + 16u"), ...products(""), ...products("n")]
      : [...loads("let", "", "k"), ...products("")];
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
${multi ? "diagnostic(off, chromium.subgroup_matrix_uniformity);\n" : ""}@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
@compute @workgroup_size(${32 * sy * sx})
fn main(@builtin(workgroup_id) wg : vec3<u32>${multi ? ", @builtin(local_invocation_index) li : u32" : ""}) {
  ${multi ? "let sg = li / 32u;" : "// one subgroup"}
  let row = ${multi ? `(wg.y * ${sy}u + sg / ${sx}u)` : "wg.y"} * ${16 * tm}u;
  let col = ${multi ? `(wg.x * ${sx}u + sg % ${sx}u)` : "wg.x"} * ${16 * tn}u;
  ${pairs.map(([i, j]) => `var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join("\n  ")}
  ${prefetch ? loads("var", "", "0u").join("\n  ") : "// no prefetch"}
  for (var k = 0u; k < ${prefetch ? K - 16 : K}u; k += ${order === "unroll2" ? 32 : 16}u) {
    ${body.join("\n    ")}
  }
  ${prefetch ? products("").join("\n  ") : "// no peeled step"}
  ${pairs.map(([i, j]) => `subgroupMatrixStore(&c, (row + ${16 * i}u) * ${N}u + col + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`).join("\n  ")}
}`;
}

/** The kernels `--variants` times: name, tm x tn matrices a subgroup, sy x sx subgroups a
 * workgroup, order (variantShader; "base" is subgroupMatrixShader, wsd's kernel). */
export function kernelVariants() {
  const out = [];
  for (const [kind, order] of [["base", "plain"], ["prefetch", "prefetch"], ["unroll2", "unroll2"]]) {
    for (const [tm, tn] of [[2, 2], [2, 4], [4, 2], [4, 4]]) out.push({ name: `${kind} ${tm}x${tn}`, tm, tn, sy: 1, sx: 1, order });
  }
  for (const [sy, sx] of [[2, 1], [1, 2], [2, 2], [4, 1], [1, 4]]) {
    for (const [tm, tn] of [[2, 2], [2, 4]]) out.push({ name: `multi ${sy}x${sx} of ${tm}x${tn}`, tm, tn, sy, sx, order: "plain" });
  }
  for (const [sy, sx, tm, tn] of [[2, 2, 2, 4], [4, 1, 2, 4], [2, 2, 2, 2]]) {
    out.push({ name: `multi-prefetch ${sy}x${sx} of ${tm}x${tn}`, tm, tn, sy, sx, order: "prefetch" });
  }
  for (const [sy, sx, tm, tn, bk, pad = 8] of PIPELINED) {
    const padded = pad === 8 ? "" : ` p${pad}`;
    out.push({ name: `pipelined ${sy}x${sx} of ${tm}x${tn} k${bk}${padded}`, tm, tn, sy, sx, bk, pad, order: "pipelined" });
    if (pad === 8) {
      // As TVM's code generator writes a vector load: four scalar loads into a vec4.
      out.push({ name: `pipelined-scalar ${sy}x${sx} of ${tm}x${tn} k${bk}`, tm, tn, sy, sx, bk, order: "pipelined", scalar: true });
    }
  }
  // PROBE_VARIANTS: a comma-separated list of name prefixes to time (default: all).
  const only = (process.env.PROBE_VARIANTS ?? "").split(",").filter((x) => x);
  return only.length ? out.filter((v) => only.some((x) => v.name.startsWith(x))) : out;
}

/**
 * The pipelined tiles tried: sy x sx subgroups of tm x tn matrices, bk columns
 * of K a stage, workgroup rows padded by `pad` halves (8 where not given).
 * The second and third rows: blocks for SD 1.5's 320 columns (a whole row of
 * 320, or 64 wide) and the builds' 128 x 128 tiles, within 32 KiB of
 * workgroup memory.
 */
const PIPELINED = [
  [2, 2, 2, 4, 32], [2, 2, 2, 2, 32], [2, 2, 4, 4, 32], [4, 2, 2, 4, 32], [2, 1, 4, 4, 32], [2, 2, 2, 2, 64],
  [2, 4, 2, 5, 16, 0], [2, 4, 2, 5, 16, 4], [2, 4, 4, 5, 16, 0], [1, 4, 2, 5, 16, 0], [1, 4, 2, 5, 16, 4],
  [4, 1, 2, 4, 32], [4, 1, 2, 4, 16], [2, 2, 2, 2, 16], [4, 2, 2, 4, 16], [4, 2, 2, 4, 16, 0], [2, 2, 2, 4, 16],
];

/**
 * One operand's tile as the pipelined kernel stages it: `rows` x `cols`
 * halves, `cols` contiguous in storage (row stride `stride`) and in workgroup
 * memory (row stride `cols + 8`, padded against bank conflicts); `base`, the
 * WGSL offset in storage of the tile at column `k` of K.
 * @typedef {{name: string, rows: number, cols: number, stride: number, base: string}} Staged
 */

/**
 * Shared workgroup tiles, software-pipelined: a workgroup of sy x sx subgroups
 * owns a (16 tm sy) x (16 tn sx) block of C; A and B are staged through two
 * workgroup buffers `bk` columns of K at a time. Each invocation loads its
 * share of the next stage's tiles (vec4<f16>) into registers before the
 * products of this stage, and stores them to the other buffer after them:
 * one barrier a stage, the global loads' latency behind the products. The
 * subgroups load their 16x16 matrices from workgroup memory. Null where the
 * tiling does not divide the shape or the invocations' share of a tile.
 * @param {number} M @param {number} N @param {number} K
 * `scalar`: A and B bound as array<f16>, each vec4 gathered from four loads.
 * `pad`: halves each workgroup row is padded by.
 * @param {{tm: number, tn: number, sy: number, sx: number, bk?: number, pad?: number, scalar?: boolean}} t
 * @param {boolean} conv  wsd's convolution layouts: A stored [K, M], B [N, K]
 */
export function pipelinedShader(M, N, K, { tm, tn, sy, sx, bk = 32, pad = 8, scalar = false }, conv) {
  const BM = 16 * tm * sy, BN = 16 * tn * sx, threads = 32 * sy * sx;
  /** @type {Staged[]} */
  const tiles = conv
    ? [{ name: "a", rows: bk, cols: BM, stride: M, base: `k * ${M}u + row` }, { name: "b", rows: BN, cols: bk, stride: K, base: `col * ${K}u + k` }]
    : [{ name: "a", rows: BM, cols: bk, stride: K, base: `row * ${K}u + k` }, { name: "b", rows: bk, cols: BN, stride: N, base: `k * ${N}u + col` }];
  if (M % BM || N % BN || K % bk || tiles.some((x) => (x.rows * x.cols) % (4 * threads))) return null;
  const share = (/** @type {Staged} */ x) => Array.from({ length: (x.rows * x.cols) / 4 / threads }, (_, p) => {
    const e = `(li + ${p * threads}u)`, per = x.cols / 4;
    return { reg: `g${x.name}_${p}`, row: `${e} / ${per}u`, col: `${e} % ${per}u * 4u` };
  });
  const size = (/** @type {Staged} */ x) => x.rows * (x.cols + pad);
  const at = (/** @type {Staged} */ x, /** @type {{row: string, col: string}} */ s) => `(${x.base}) + (${s.row}) * ${x.stride}u + ${s.col}`;
  const gather = (/** @type {string} */ name, /** @type {string} */ i) => `vec4<f16>(${[0, 1, 2, 3].map((q) => `${name}[${i} + ${q}u]`).join(", ")})`;
  const fetch = tiles.flatMap((x) => share(x).map((s) => `${s.reg} = ${scalar ? gather(x.name, `(${at(x, s)})`) : `${x.name}[(${at(x, s)}) / 4u]`};`));
  const stash = tiles.flatMap((x) => share(x).flatMap((s) => [0, 1, 2, 3].map(
    (q) => `t${x.name}[buf * ${size(x)}u + (${s.row}) * ${x.cols + pad}u + ${s.col} + ${q}u] = ${s.reg}[${q}];`)));
  const [ta, tb] = tiles.map((x) => ({ at: `cur * ${size(x)}u`, s: x.cols + pad }));
  const left = "subgroup_matrix_left<f16, 16, 16>", right = "subgroup_matrix_right<f16, 16, 16>";
  /** @type {number[][]} */
  const pairs = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) pairs.push([i, j]);
  const products = [];
  for (let kk = 0; kk < bk; kk += 16) {
    for (let i = 0; i < tm; i++) {
      const at = conv ? `${kk * ta.s}u + sr + ${16 * i}u, true` : `(sr + ${16 * i}u) * ${ta.s}u + ${kk}u, false`;
      products.push(`let a_${kk}_${i} = subgroupMatrixLoad<${left}>(&ta, ${ta.at} + ${at}, ${ta.s}u);`);
    }
    for (let j = 0; j < tn; j++) {
      const at = conv ? `(sc + ${16 * j}u) * ${tb.s}u + ${kk}u, true` : `${kk * tb.s}u + sc + ${16 * j}u, false`;
      products.push(`let b_${kk}_${j} = subgroupMatrixLoad<${right}>(&tb, ${tb.at} + ${at}, ${tb.s}u);`);
    }
    products.push(...pairs.map(([i, j]) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${kk}_${i}, b_${kk}_${j}, acc_${i}_${j});`));
  }
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a : array<${scalar ? "f16" : "vec4<f16>"}>;
@group(0) @binding(1) var<storage, read> b : array<${scalar ? "f16" : "vec4<f16>"}>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
var<workgroup> ta : array<f16, ${2 * size(tiles[0])}>;
var<workgroup> tb : array<f16, ${2 * size(tiles[1])}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_index) li : u32) {
  let row = wg.y * ${BM}u;
  let col = wg.x * ${BN}u;
  let sg = li / 32u;
  let sr = (sg / ${sx}u) * ${16 * tm}u;
  let sc = (sg % ${sx}u) * ${16 * tn}u;
  ${pairs.map(([i, j]) => `var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join("\n  ")}
  ${tiles.flatMap((x) => share(x).map((s) => `var ${s.reg} : vec4<f16>;`)).join("\n  ")}
  var k = 0u;
  var buf = 0u;
  ${fetch.join("\n  ")}
  ${stash.join("\n  ")}
  workgroupBarrier();
  for (var step = 0u; step < ${K / bk}u; step++) {
    let cur = step % 2u;
    k = (step + 1u) * ${bk}u;
    buf = 1u - cur;
    let more = step + 1u < ${K / bk}u;
    if (more) {
      ${fetch.join("\n      ")}
    }
    ${products.join("\n    ")}
    if (more) {
      ${stash.join("\n      ")}
    }
    workgroupBarrier();
  }
  // C row-major [M, N] in both layouts, as the probe checks it.
  ${pairs.map(([i, j]) => `subgroupMatrixStore(&c, (row + sr + ${16 * i}u) * ${N}u + col + sc + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`).join("\n  ")}
}`;
}

/**
 * Several subgroups share workgroup tiles. A workgroup of SY x SX subgroups
 * (32 x SY x SX invocations) owns a (16 TM SY) x (16 TN SX) block of C; each
 * subgroup a (16 TM) x (16 TN) part of it. A and B are staged through
 * workgroup memory BK columns of K at a time (vec4 loads, rows padded by 8
 * halves against bank conflicts), then every subgroup loads its matrices from
 * there. Which subgroup an invocation is in is not workgroup-uniform to
 * Tint's analysis, so its uniformity diagnostic is turned off (correct where
 * 32 consecutive invocations are one subgroup).
 * @param {number} M @param {number} N @param {number} K
 * @param {{sy: number, sx: number, tm: number, tn: number, bk: number}} t
 */
export function sharedTileShader(M, N, K, t) {
  const BM = 16 * t.tm * t.sy, BN = 16 * t.tn * t.sx, BK = t.bk, threads = 32 * t.sy * t.sx;
  const SA = BK + 8, SB = BN + 8;
  const pairs = [];
  for (let i = 0; i < t.tm; i++) for (let j = 0; j < t.tn; j++) pairs.push([i, j]);
  const left = "subgroup_matrix_left<f16, 16, 16>", right = "subgroup_matrix_right<f16, 16, 16>";
  const loads = [];
  for (let i = 0; i < t.tm; i++) loads.push(`let a_${i} = subgroupMatrixLoad<${left}>(&ta, (sr + ${16 * i}u) * ${SA}u + kk, false, ${SA}u);`);
  for (let j = 0; j < t.tn; j++) loads.push(`let b_${j} = subgroupMatrixLoad<${right}>(&tb, kk * ${SB}u + sc + ${16 * j}u, false, ${SB}u);`);
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> a : array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> b : array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
var<workgroup> ta : array<f16, ${BM * SA}>;
var<workgroup> tb : array<f16, ${BK * SB}>;
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_index) li : u32) {
  let row = wg.y * ${BM}u;
  let col = wg.x * ${BN}u;
  let sg = li / 32u;
  let sr = (sg / ${t.sx}u) * ${16 * t.tm}u;
  let sc = (sg % ${t.sx}u) * ${16 * t.tn}u;
  ${pairs.map(([i, j]) => `var acc_${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join("\n  ")}
  for (var k = 0u; k < ${K}u; k += ${BK}u) {
    for (var e = li; e < ${(BM * BK) / 4}u; e += ${threads}u) {
      let r = e / ${BK / 4}u;
      let q = e % ${BK / 4}u;
      let v = a[((row + r) * ${K}u + k) / 4u + q];
      for (var x = 0u; x < 4u; x++) { ta[r * ${SA}u + q * 4u + x] = v[x]; }
    }
    for (var e = li; e < ${(BK * BN) / 4}u; e += ${threads}u) {
      let r = e / ${BN / 4}u;
      let q = e % ${BN / 4}u;
      let v = b[((k + r) * ${N}u + col) / 4u + q];
      for (var x = 0u; x < 4u; x++) { tb[r * ${SB}u + q * 4u + x] = v[x]; }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk += 16u) {
      ${loads.join("\n      ")}
      ${pairs.map(([i, j]) => `acc_${i}_${j} = subgroupMatrixMultiplyAccumulate(a_${i}, b_${j}, acc_${i}_${j});`).join("\n      ")}
    }
    workgroupBarrier();
  }
  ${pairs.map(([i, j]) => `subgroupMatrixStore(&c, (row + sr + ${16 * i}u) * ${N}u + col + sc + ${16 * j}u, acc_${i}_${j}, false, ${N}u);`).join("\n  ")}
}`;
}

/** The shared-tile variants tried: subgroups per workgroup (sy x sx), matrices per subgroup (tm x tn), K per stage. */
export const SHARED_TILES = [
  { sy: 2, sx: 2, tm: 2, tn: 2, bk: 32 }, { sy: 2, sx: 2, tm: 2, tn: 2, bk: 64 }, { sy: 4, sx: 2, tm: 2, tn: 2, bk: 32 },
  { sy: 2, sx: 2, tm: 2, tn: 4, bk: 32 }, { sy: 4, sx: 1, tm: 2, tn: 4, bk: 32 }, { sy: 4, sx: 2, tm: 2, tn: 4, bk: 32 },
  { sy: 2, sx: 2, tm: 4, tn: 4, bk: 32 }, { sy: 4, sx: 1, tm: 2, tn: 2, bk: 32 }, { sy: 2, sx: 2, tm: 4, tn: 2, bk: 64 },
  { sy: 2, sx: 4, tm: 2, tn: 2, bk: 32 }, { sy: 1, sx: 1, tm: 2, tn: 2, bk: 32 }, { sy: 1, sx: 1, tm: 2, tn: 2, bk: 64 },
];

/**
 * The scalar baseline: 16x16 threads, 4x4 outputs each, K in steps of 16
 * through workgroup tiles (what a plain tiled kernel does).
 * @param {number} M @param {number} N @param {number} K
 */
export function scalarShader(M, N, K) {
  return `enable f16;
@group(0) @binding(0) var<storage, read> a : array<f16>;
@group(0) @binding(1) var<storage, read> b : array<f16>;
@group(0) @binding(2) var<storage, read_write> c : array<f32>;
var<workgroup> ta : array<f32, ${64 * 16}>;
var<workgroup> tb : array<f32, ${16 * 64}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_id) lid : vec3<u32>) {
  let row = wg.y * 64u;
  let col = wg.x * 64u;
  var acc : array<f32, 16>;
  for (var k = 0u; k < ${K}u; k += 16u) {
    for (var t = 0u; t < 4u; t++) {
      let e = (lid.y * 16u + lid.x) * 4u + t;
      ta[e] = f32(a[(row + e / 16u) * ${K}u + k + e % 16u]);
      tb[e] = f32(b[(k + e / 64u) * ${N}u + col + e % 64u]);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      for (var i = 0u; i < 4u; i++) {
        let av = ta[(lid.y * 4u + i) * 16u + kk];
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(av, tb[kk * 64u + lid.x * 4u + j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      c[(row + lid.y * 4u + i) * ${N}u + col + lid.x * 4u + j] = acc[i * 4u + j];
    }
  }
}`;
}
