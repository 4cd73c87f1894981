import assert from "node:assert/strict";
import test from "node:test";

import { SUBGROUP_MATRIX_ENABLE, completeShader, vectorizeStores, vectorizeTileLoads } from "../../src/wsd_web/static/js/wgsl_rewrite.js";

/** A kernel with workgroup tiles as TVM writes it (shortened; wsd_compile.kernels.subgroup_tiles). */
const TILES = `enable f16;

@group(0) @binding(0) var<storage, read> A_ptr : array<f16>;
@group(0) @binding(1) var<storage, read> B_ptr : array<f16>;
@group(0) @binding(2) var<storage, read_write> C_ptr : array<f32>;
var<workgroup> wsd_ta : array<f16, 3072>;
var<workgroup> wsd_tb : array<f16, 4352>;
@compute @workgroup_size(128, 1, 1)
fn subgroup_matrix_matmul_kernel(@builtin(local_invocation_id) threadIdx : vec3<u32>) {
  wsd_ga0 = vec4<f16>(A_ptr[(wsd_m0 * 64u + wsd_k) + ((wsd_li + 0u) / 4u) * 64u + (wsd_li + 0u) % 4u * 4u + 0u], A_ptr[(wsd_m0 * 64u + wsd_k) + ((wsd_li + 0u) / 4u) * 64u + (wsd_li + 0u) % 4u * 4u + 1u], A_ptr[(wsd_m0 * 64u + wsd_k) + ((wsd_li + 0u) / 4u) * 64u + (wsd_li + 0u) % 4u * 4u + 2u], A_ptr[(wsd_m0 * 64u + wsd_k) + ((wsd_li + 0u) / 4u) * 64u + (wsd_li + 0u) % 4u * 4u + 3u]);
  wsd_gb0 = vec4<f16>(B_ptr[(wsd_k * 128u + wsd_n0) + wsd_li * 4u + 0u], B_ptr[(wsd_k * 128u + wsd_n0) + wsd_li * 4u + 1u], B_ptr[(wsd_k * 128u + wsd_n0) + wsd_li * 4u + 2u], B_ptr[(wsd_k * 128u + wsd_n0) + wsd_li * 4u + 3u]);
  //(A_ptr, B_ptr, wsd_ta, wsd_tb, C_ptr);
}`;

test("the tiles' gathers of four halves become vector loads of their buffers", () => {
  const out = vectorizeTileLoads(TILES);
  assert.match(out, /var<storage, read> A_ptr : array<vec4<f16>>;/);
  assert.match(out, /var<storage, read> B_ptr : array<vec4<f16>>;/);
  assert.ok(out.includes("wsd_ga0 = A_ptr[((wsd_m0 * 64u + wsd_k) + ((wsd_li + 0u) / 4u) * 64u + (wsd_li + 0u) % 4u * 4u) / 4u];"));
  assert.ok(out.includes("wsd_gb0 = B_ptr[((wsd_k * 128u + wsd_n0) + wsd_li * 4u) / 4u];"));
  assert.ok(!out.includes("vec4<f16>(A_ptr") && !out.includes("vec4<f16>(B_ptr"));
  assert.equal(completeShader(TILES), vectorizeTileLoads(`${SUBGROUP_MATRIX_ENABLE}\n${TILES}`));
});

test("a buffer read other than by gathers, and shaders without tiles, stay as they are", () => {
  const other = TILES.replace("  //(A_ptr", "  let x = A_ptr[7u];\n  //(A_ptr");
  const out = vectorizeTileLoads(other);
  assert.match(out, /var<storage, read> A_ptr : array<f16>;/); // A is read once more: scalar
  assert.ok(out.includes("vec4<f16>(A_ptr[("));
  assert.match(out, /var<storage, read> B_ptr : array<vec4<f16>>;/); // B is only gathered
  // Lanes that are not X + 0..3 of one X are no gather.
  const skewed = TILES.replace("wsd_li * 4u + 3u]", "wsd_li * 4u + 5u]");
  assert.match(vectorizeTileLoads(skewed), /var<storage, read> B_ptr : array<f16>;/);
  const plain = TILES.replace(/var<workgroup> wsd_t[ab][^\n]*\n/g, "");
  assert.equal(vectorizeTileLoads(plain), plain);
});

/** An im2col kernel as TVM writes it (shortened; wsd_compile.kernels.im2col): each tap of 4 pixels stored as 4 lines. */
const IM2COL = `enable f16;

@group(0) @binding(0) var<storage, read_write> im2col_intermediate_ptr : array<f16>;
@group(0) @binding(1) var<storage, read> x_ptr : array<f16>;
fn fused_silu_im2col_kernel(@builtin(local_invocation_id) threadIdx : vec3<u32>) {
  var im2col_intermediate_local : array<f16, 4>;
  im2col_intermediate_local[0i] = x_ptr[i32(threadIdx.x)];
  let v__2 : i32 = (i32(threadIdx.x) * 4i);
${[0, 1, 2, 3].map((q) => `  im2col_intermediate_ptr[v__2 + ${q}] = vec4<f16>(im2col_intermediate_local[0i + 0], im2col_intermediate_local[0i + 1], im2col_intermediate_local[0i + 2], im2col_intermediate_local[0i + 3])[${q}];`).join("\n")}
  let v__3 : i32 = ((i32(threadIdx.x) * 4i) + 8192i);
${[0, 1, 2, 3].map((q) => `  im2col_intermediate_ptr[v__3 + ${q}] = vec4<f16>(im2col_intermediate_local[0i + 0], im2col_intermediate_local[0i + 1], im2col_intermediate_local[0i + 2], im2col_intermediate_local[0i + 3])[${q}];`).join("\n")}
}`;

test("an im2col matrix stored four lines a vector gets one vector store each", () => {
  const out = completeShader(IM2COL);
  assert.equal(out, vectorizeStores(IM2COL));
  assert.match(out, /var<storage, read_write> im2col_intermediate_ptr : array<vec4<f16>>;/);
  const vector = "vec4<f16>(im2col_intermediate_local[0i + 0], im2col_intermediate_local[0i + 1], im2col_intermediate_local[0i + 2], im2col_intermediate_local[0i + 3]);";
  assert.ok(out.includes(`  im2col_intermediate_ptr[(v__2) / 4] = ${vector}`));
  assert.ok(out.includes(`  im2col_intermediate_ptr[(v__3) / 4] = ${vector}`));
  assert.equal(out.split("im2col_intermediate_ptr[").length - 1, 2);
  assert.ok(out.includes("x_ptr[i32(threadIdx.x)]")); // the rest as it was
});

test("an im2col matrix accessed otherwise, skewed lanes and other buffers stay scalar", () => {
  const read = IM2COL.replace("  let v__3", "  let y = im2col_intermediate_ptr[3];\n  let v__3");
  assert.equal(vectorizeStores(read), read);
  const skewed = IM2COL.replace("[v__3 + 3] = vec4", "[v__3 + 5] = vec4");
  assert.equal(vectorizeStores(skewed), skewed);
  const other = IM2COL.replaceAll("im2col_intermediate_ptr", "T_add_ptr");
  assert.equal(vectorizeStores(other), other);
});
