/**
 * Classic workgroup-memory tiled matmul, for real GPUs: a 16x16 workgroup computes a 64x64 tile of C,
 * each invocation a 4x4 block. Per step of 16 values of k the workgroup stages a 64x16 slice of A and a
 * 16x64 slice of B in workgroup memory (each invocation loads 4 + 4 elements, consecutive invocations
 * reading consecutive addresses whatever the operand's transposition), then every invocation reads
 * vec4s of both and does 16 outer products. Two barriers per step: cheap on GPUs, ruinous on lavapipe
 * (GUIDE §1), which is why the variant is chosen by measurement.
 */
import { MATMUL_UNIFORMS_WGSL, MATMUL_C_BASE_WGSL, matmulUniformBinding } from './layout.js';
import { readBinding } from '../cast/wgsl.js';
export interface TiledMatmulParams {
  transA: boolean;
  transB: boolean;
  /** Adds bias[col] to every row (bias[row] to every column with biasRows). */
  bias?: boolean;
  biasRows?: boolean;
  /** Adds D in C's layout. */
  addend?: boolean;
  /** Writes A's row sums to E (MatmulAttrs.rowSumsA), summed by the invocations of the first tile column. */
  rowSums?: boolean;
  /** B is stored as float16 (read through B_at). */
  bF16?: boolean;
  /** The bias is stored as float16. */
  biasF16?: boolean;
}

export const TILE_M = 64;
export const TILE_N = 64;
const TK = 16;
const WG = 16;

export function tiledMatmulWgsl(p: TiledMatmulParams): string {
  // element e of the staged slice → (row or column inside the tile, k inside the step), chosen so that
  // consecutive invocations touch consecutive memory
  const aMap = p.transA ? ['e % 64u', 'e / 64u'] : ['e / 16u', 'e % 16u'];
  const bMap = p.transB ? ['e / 16u', 'e % 16u'] : ['e % 64u', 'e / 64u'];
  const aIdx = p.transA ? 'ab + gk * u.lda + gr' : 'ab + gr * u.lda + gk';
  const bIdx = p.transB ? 'bb + gc * u.ldb + gk' : 'bb + gk * u.ldb + gc';
  const fmas = [0, 1, 2, 3].map((i) => `      acc[${i}] = fma(vec4<f32>(a[${i}]), b, acc[${i}]);`).join('\n');
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
${readBinding(1, 'B', !!p.bF16)}
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${MATMUL_UNIFORMS_WGSL}
${matmulUniformBinding(!!p.bias, !!p.addend, !!p.rowSums, !!p.biasF16)}
// [k][rows / 4] and [k][columns / 4]
var<workgroup> As: array<vec4<f32>, ${(TK * TILE_M) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(TK * TILE_N) / 4}>;
@compute @workgroup_size(${WG}, ${WG}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let rowT = wg.y * ${TILE_M}u;
  let colT = wg.x * ${TILE_N}u;
  let bz = wg.z + u.z0;
  let ab = u.aoff + (bz / u.binner) * u.abs2 + (bz % u.binner) * u.abs;
  let bb = u.boff + (bz / u.binner) * u.bbs2 + (bz % u.binner) * u.bbs;
  var acc: array<vec4<f32>, 4>;${p.rowSums ? '\n  var rs = vec4<f32>(0.0);' : ''}
  for (var k0 = 0u; k0 < u.k; k0 += ${TK}u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * ${WG * WG}u;
      {
        let r = ${aMap[0]}; let kk = ${aMap[1]};
        let gr = rowT + r; let gk = k0 + kk;
        var v = 0.0;
        if (gr < u.m && gk < u.k) { v = A[${aIdx}]; }
        As[kk * ${TILE_M / 4}u + r / 4u][r % 4u] = v;
      }
      {
        let c = ${bMap[0]}; let kk = ${bMap[1]};
        let gc = colT + c; let gk = k0 + kk;
        var v = 0.0;
        if (gc < u.n && gk < u.k) { v = B_at(${bIdx}); }
        Bs[kk * ${TILE_N / 4}u + c / 4u][c % 4u] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a = As[kk * ${TILE_M / 4}u + lid.y];
      let b = Bs[kk * ${TILE_N / 4}u + lid.x];
${fmas}${p.rowSums ? '\n      rs += a;' : ''}
    }
    workgroupBarrier();
  }
  let cb = ${MATMUL_C_BASE_WGSL};${
    p.rowSums
      ? `
  if (wg.x == 0u && lid.x == 0u) {
    for (var i = 0u; i < 4u; i++) { let r = rowT + lid.y * 4u + i; if (r < u.m) { E[u.eoff + bz * u.m + r] = rs[i]; } }
  }`
      : ''
  }
  let c0 = colT + lid.x * 4u;
  for (var i = 0u; i < 4u; i++) {
    let r = rowT + lid.y * 4u + i;
    if (r >= u.m) { break; }
    for (var j = 0u; j < 4u; j++) {
      let ci = cb + r * u.ldc + c0 + j;
      if (c0 + j < u.n) { C[ci] = acc[i][j] * u.alpha${p.bias ? ` + bias_at(u.biasoff + ${p.biasRows ? 'r' : 'c0 + j'})` : ''}${p.addend ? ' + D[u.doff + ci]' : ''}; }
    }
  }
}`;
}

/** Workgroups for a [batch, m, n] output. */
export function tiledWorkgroups(m: number, n: number, batch: number): [number, number, number] {
  return [Math.ceil(n / TILE_N), Math.ceil(m / TILE_M), batch];
}
