// The fused attention's shaders for probe_subgroup_matrix.mjs --attention:
// FlashAttention's online softmax on subgroup matrices, in variants. A probe
// of a design (docs/kernels.md, "Attention fused on tensor cores"), not part
// of a build.

/**
 * The shape of flashAttentionShader's kernel.
 * @typedef {{n: number, D: number, DP: number, DT: number, DV: number, qt: number, kb: number, wq: number,
 *   threads: number, lazy: number, scale: number, lanes: number}} AttentionPlan
 */

const range = (/** @type {number} */ x) => Array.from({ length: x }, (_, i) => i);
const LEFT = "subgroup_matrix_left<f16, 16, 16>", RIGHT = "subgroup_matrix_right<f16, 16, 16>";
const RESULT = "subgroup_matrix_result<f32, 16, 16>";

/**
 * The subgroup-matrix statements of the attention kernel: Q's matrices, the
 * output's, the scores of a block (per 16 keys, in a scope of their own), the
 * output to and from workgroup memory, and `P V`.
 * @param {AttentionPlan} a
 */
function attentionMatrices({ DP, DT, qt, kb }) {
  const each = (/** @type {(t: number, d: number) => string} */ f) => range(qt).flatMap((t) => range(DT).map((d) => f(t, d)));
  const block = (/** @type {string[]} */ lines) => `{\n      ${lines.join("\n      ")}\n    }`;
  const at = (/** @type {number} */ t, /** @type {number} */ d) => `(sr + ${16 * t}u) * ${DP}u + ${16 * d}u`;
  return {
    q: each((t, d) => `let q_${t}_${d} = subgroupMatrixLoad<${LEFT}>(&p_sh, ${at(t, d)}, false, ${DP}u);`),
    o: each((t, d) => `var o_${t}_${d} = ${RESULT}();`),
    scores: range(kb / 16).map((j) => block([
      ...range(qt).map((t) => `var s_${t} = ${RESULT}();`),
      ...range(DT).flatMap((d) => [
        `let k_${d} = subgroupMatrixLoad<${RIGHT}>(&k_sh, ${16 * j * DP + 16 * d}u, true, ${DP}u);`,
        ...range(qt).map((t) => `s_${t} = subgroupMatrixMultiplyAccumulate(q_${t}_${d}, k_${d}, s_${t});`),
      ]),
      ...range(qt).map((t) => `subgroupMatrixStore(&s_sh, (sr + ${16 * t}u) * ${kb}u + ${16 * j}u, s_${t}, false, ${kb}u);`),
    ])),
    store: each((t, d) => `subgroupMatrixStore(&s_sh, ${at(t, d)}, o_${t}_${d}, false, ${DP}u);`),
    load: each((t, d) => `o_${t}_${d} = subgroupMatrixLoad<${RESULT}>(&s_sh, ${at(t, d)}, false, ${DP}u);`),
    pv: range(kb / 16).map((j) => block([
      ...range(qt).map((t) => `let p_${t} = subgroupMatrixLoad<${LEFT}>(&p_sh, (sr + ${16 * t}u) * ${kb}u + ${16 * j}u, false, ${kb}u);`),
      ...range(DT).flatMap((d) => [
        `let v_${d} = subgroupMatrixLoad<${RIGHT}>(&v_sh, ${16 * j * DP + 16 * d}u, false, ${DP}u);`,
        ...range(qt).map((t) => `o_${t}_${d} = subgroupMatrixMultiplyAccumulate(p_${t}, v_${d}, o_${t}_${d});`),
      ]),
    ])),
  };
}

/**
 * The attention kernel's declarations, and its function staging Q.
 * @param {AttentionPlan} a
 */
function attentionHeader({ DP, DV, kb, wq, threads, lanes }) {
  return `enable f16;
${lanes === 2 ? "enable subgroups;\n" : ""}enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
${lanes === 2 ? "diagnostic(off, subgroup_uniformity);\n" : ""}
@group(0) @binding(0) var<storage, read> q : array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> k : array<vec4<f16>>;
@group(0) @binding(2) var<storage, read> v : array<vec4<f16>>;
@group(0) @binding(3) var<storage, read_write> o : array<f16>;
var<workgroup> k_sh : array<f16, ${kb * DP}>;
var<workgroup> v_sh : array<f16, ${kb * DP}>;
var<workgroup> s_sh : array<f32, ${wq * kb}>;
var<workgroup> p_sh : array<f16, ${wq * kb}>;
var<workgroup> alpha_sh : array<f32, ${wq}>;
// The workgroup's rows of Q into p_sh (free until the first block's P), rows of DP halves, zero-padded.
fn stage_q(first : u32, li : u32) {
  for (var e = li; e < ${wq * (DP / 4)}u; e += ${threads}u) {
    let r = e / ${DP / 4}u;
    let c = e % ${DP / 4}u;
    var x = vec4<f16>();
    if (c < ${DV}u) { x = q[(first + r) * ${DV}u + c]; }
    for (var i = 0u; i < 4u; i++) { p_sh[r * ${DP}u + c * 4u + i] = x[i]; }
  }
}
`;
}

/**
 * Where an invocation's share of its rows is: `passes` rows one after
 * another (`t`), `row` and the first of its `cols` columns of a block. Two
 * invocations a row (`lanes` 2, a shuffle between them), or one (32 rows a
 * subgroup: `qt` 2, no subgroup builtins).
 * @param {AttentionPlan} a
 */
function attentionLanes({ qt, kb, DP, D, lanes }) {
  return lanes === 1
    ? { passes: 1, row: "sr + lane", col: "0u", cols: kb, dpCol: "0u", dpCols: DP, dCol: "0u", dCols: D }
    : { passes: qt, row: "sr + t * 16u + lane / 2u", col: `hf * ${kb / 2}u`, cols: kb / 2,
      dpCol: `hf * ${DP / 2}u`, dpCols: DP / 2, dCol: `hf * ${D / 2}u`, dCols: D / 2 };
}

/**
 * One block's softmax: the maximum of each row, the reference maximum moved
 * where it grows by more than 2^lazy (its factor is 1 otherwise), P in fp16
 * and the row's running sum. The invocations of a subgroup start their rows
 * at different columns, so that they read different banks of workgroup memory.
 * @param {AttentionPlan} a
 */
function attentionSoftmax(a) {
  const { lazy, scale } = a, at = attentionLanes(a);
  const both = (/** @type {string} */ x) => (a.lanes === 2 ? `${x} += subgroupShuffleXor(${x}, 1u);` : "");
  return `for (var t = 0u; t < ${at.passes}u; t++) {
      let row = ${at.row};
      let sat = row * ${a.kb}u + ${at.col};
      var mx = -1e30;
      for (var c = 0u; c < ${at.cols}u; c++) { mx = max(mx, s_sh[sat + (c + lane) % ${at.cols}u]); }
      ${a.lanes === 2 ? "mx = max(mx, subgroupShuffleXor(mx, 1u));" : ""}
      mx *= ${scale};
      var alpha = 1.0;
      if (mx > m_ref[t] + ${lazy}.0) {
        alpha = exp2(m_ref[t] - mx);
        m_ref[t] = mx;
      }
      alpha_sh[row] = alpha;
      var total = 0.0;
      for (var c = 0u; c < ${at.cols}u; c++) {
        let cc = sat + (c + lane) % ${at.cols}u;
        let p = f16(exp2(s_sh[cc] * ${scale} - m_ref[t]));
        p_sh[cc] = p;
        total += f32(p);
      }
      ${both("total")}
      l_sum[t] = l_sum[t] * alpha + total;
    }`;
}

/**
 * The start of the attention kernel's function, common to its variants: Q
 * staged and loaded, the rows' running maxima and sums and `declarations`,
 * then in the loop over blocks of keys, K's and V's block staged in
 * workgroup memory, the scores and their softmax.
 * @param {AttentionPlan} a @param {ReturnType<typeof attentionMatrices>} m
 * @param {ReturnType<typeof attentionLanes>} at @param {string} declarations
 */
function attentionStart(a, m, at, declarations) {
  const { n, DP } = a;
  return `${attentionHeader(a)}@compute @workgroup_size(${a.threads})
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(local_invocation_index) li : u32) {
  let head = wg.y * ${n}u;
  let q0 = wg.x * ${a.wq}u;
  let lane = li % 32u;
  let sr = li / 32u * ${16 * a.qt}u;
  let hf = lane % 2u;
  stage_q(head + q0, li);
  workgroupBarrier();
  ${m.q.join("\n  ")}
  ${declarations}
  var m_ref = array<f32, ${at.passes}>(${range(at.passes).map(() => "-1e30").join(", ")});
  var l_sum = array<f32, ${at.passes}>();
  for (var kb = 0u; kb < ${n}u; kb += ${a.kb}u) {
    workgroupBarrier();
    for (var e = li; e < ${a.kb * (DP / 4)}u; e += ${a.threads}u) {
      let r = e / ${DP / 4}u;
      let c = e % ${DP / 4}u;
      var kx = vec4<f16>();
      var vx = vec4<f16>();
      if (c < ${a.DV}u) {
        kx = k[(head + kb + r) * ${a.DV}u + c];
        vx = v[(head + kb + r) * ${a.DV}u + c];
      }
      for (var i = 0u; i < 4u; i++) {
        k_sh[r * ${DP}u + c * 4u + i] = kx[i];
        v_sh[r * ${DP}u + c * 4u + i] = vx[i];
      }
    }
    workgroupBarrier();
    ${m.scores.join("\n    ")}
    workgroupBarrier();
    ${attentionSoftmax(a)}`;
}

/**
 * Attention fused on tensor cores: O = softmax(Q K^T / sqrt(D)) V for each
 * head of `n` queries and keys, Q, K, V and O stored [heads, n, D] in fp16
 * (D a multiple of 8, zero-padded to 16s in workgroup memory); one workgroup
 * per `sg` x 16 `qt` query rows of a head (grid: n / (16 sg qt) x heads).
 * Each subgroup keeps its Q matrices and output; per block of `kb` keys:
 * - K's and V's block is staged in workgroup memory, shared by the subgroups;
 * - the scores Q K^T go to workgroup memory (f32) for the softmax
 *   (attentionSoftmax), which writes P (fp16) for `P V` on tensor cores;
 * - the output is rescaled through workgroup memory in every block (a row's
 *   reference maximum moves only when its maximum grew by more than 2^lazy).
 * With `oregs`, the output is kept in registers instead: each block's `P V`
 * goes into fresh matrices, through workgroup memory once, and each invocation
 * adds its share of rows into its registers, rescaled there.
 * A probe of a design, not part of a build. Null where the shape does not fit.
 * @param {number} n @param {number} D
 * @param {{sg: number, qt: number, kb: number, lazy: number, lanes?: number, oregs?: boolean}} t
 *   `lanes`: invocations a row in the softmax (attentionLanes; default 2)
 */
export function flashAttentionShader(n, D, { sg, qt, kb, lazy, lanes = 2, oregs = false }) {
  const DP = Math.ceil(D / 16) * 16;
  /** @type {AttentionPlan} */
  const a = {
    n, D, DP, DT: DP / 16, DV: D / 4, qt, kb, wq: 16 * sg * qt, threads: 32 * sg, lazy, scale: Math.log2(Math.E) / Math.sqrt(D), lanes,
  };
  if (n % a.wq || n % kb || kb % 16 || D % 8 || kb < DP || (lanes === 1 && qt !== 2)) return null;
  const m = attentionMatrices(a), at = attentionLanes(a);
  if (oregs) return registerOutputAttention(a, m, at);
  return `${attentionStart(a, m, at, m.o.join("\n  "))}
    // Every block, without a branch: a subgroup-matrix variable assigned inside an if
    // comes out wrong on Dawn over NVIDIA's Vulkan driver (docs/kernels.md).
    workgroupBarrier();
    ${m.store.join("\n    ")}
    workgroupBarrier();
    for (var t = 0u; t < ${at.passes}u; t++) {
      let row = ${at.row};
      for (var c = 0u; c < ${at.dpCols}u; c++) {
        let cc = row * ${DP}u + ${at.dpCol} + (c + lane) % ${at.dpCols}u;
        s_sh[cc] *= alpha_sh[row];
      }
    }
    workgroupBarrier();
    ${m.load.join("\n    ")}
    ${m.pv.join("\n    ")}
  }
  workgroupBarrier();
  ${m.store.join("\n  ")}
  workgroupBarrier();
  for (var t = 0u; t < ${at.passes}u; t++) {
    let row = ${at.row};
    let inv = 1.0 / l_sum[t];
    for (var c = ${at.dCol}; c < ${at.dCol} + ${at.dCols}u; c++) {
      o[(head + q0 + row) * ${D}u + c] = f16(s_sh[row * ${DP}u + c] * inv);
    }
  }
}`;
}

/**
 * flashAttentionShader with the output in registers (`oregs`): per block,
 * `P V` into fresh matrices, stored once to workgroup memory, where each
 * invocation reads its share of its rows (`passes` rows of `dpCols` columns)
 * into its registers, after rescaling them by the row's factor.
 * @param {AttentionPlan} a @param {ReturnType<typeof attentionMatrices>} m
 * @param {ReturnType<typeof attentionLanes>} at
 */
function registerOutputAttention(a, m, at) {
  const { D, DP } = a;
  const cols = at.dpCols;
  return `${attentionStart(a, m, at, `var acc = array<f32, ${at.passes * cols}>();`)}
    workgroupBarrier();
    {
      ${m.o.join("\n      ")}
      ${m.pv.join("\n      ")}
      ${m.store.join("\n      ")}
    }
    workgroupBarrier();
${range(at.passes).map((t) => `    {
      let row = ${at.row.replace("t * 16u", `${t * 16}u`)};
      let alpha = alpha_sh[row];
${range(cols).map((c) => `      acc[${t * cols + c}] = acc[${t * cols + c}] * alpha + s_sh[row * ${DP}u + ${at.dpCol} + ${c}u];`).join("\n")}
    }`).join("\n")}
  }
${range(at.passes).map((t) => `  {
    let row = ${at.row.replace("t * 16u", `${t * 16}u`)};
    let inv = 1.0 / l_sum[${t}];
${range(cols).map((c) => `    if (${at.dpCol} + ${c}u < ${D}u) { o[(head + q0 + row) * ${D}u + ${at.dpCol} + ${c}u] = f16(acc[${t * cols + c}] * inv); }`).join("\n")}
  }`).join("\n")}
}`;
}
