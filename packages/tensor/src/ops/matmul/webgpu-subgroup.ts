/**
 * The lavapipe matmul (GUIDE §1). On a CPU "GPU" a workgroup of 8 lanes is one 8-wide SIMD vector:
 * per-lane storage loads (gathers) are what costs, subgroupBroadcast is cheap, barriers are very
 * expensive. So each workgroup is one subgroup owning `rows` rows of C and 8 * 4 * `groups` columns;
 * for every 8 values of k each lane loads one A element per row and the subgroup shares them with
 * subgroupBroadcast(a, constLane), while each lane loads its B columns once per k (vec4 when aligned)
 * and reuses them across all the rows. No workgroup memory, no barriers.
 *
 * Loop order matters more than anything else here: the accumulators (rows x groups vec4) never fit
 * in registers, so the code walks row by row and, within a row, over the 8 values of k. A row's
 * accumulators then stay in registers for 8 * 4 * groups FMAs, and the B values are reloaded from the
 * stack (one cheap vector load each) instead of the accumulators being spilled and refilled around
 * every FMA: ~2x faster at 32 rows, and going from 32 to 64 rows halves the B gathers per FMA
 * (1024^3 on lavapipe, 2 cores: 6 → 13 → 50 GFLOP/s).
 *
 * Subgroup sizes differ by adapter (lavapipe 8, SwiftShader 4, NVIDIA 32, AMD 32/64). The kernel
 * never assumes one: a workgroup is WG_SIZE invocations whose columns come from
 * local_invocation_index, and A is shared in steps of `lanes` (4 or 8, at most the adapter's minimum
 * subgroup size): lane l of every subgroup loads A[k0 + (l % lanes)], so broadcasting lane
 * j < lanes gives A[k0 + j] whatever the subgroup's size, and a workgroup split over several
 * subgroups (4-lane adapters) still computes every column once.
 */
import { MATMUL_UNIFORMS_WGSL, MATMUL_C_BASE_WGSL, matmulUniformBinding, EPILOGUE_BIAS, EPILOGUE_BIAS_ROWS, EPILOGUE_ADDEND } from './layout.js';
import { readBinding, readBindingVec4 } from '../cast/wgsl.js';
export interface SubgroupMatmulParams {
  transA: boolean;
  transB: boolean;
  /** Rows of C per workgroup. */
  rows: number;
  /** Column groups of 4 per lane. */
  groups: number;
  /** B rows are 16-byte aligned and N % 4 == 0 (vec4 loads; only when !transB). */
  vecB: boolean;
  /**
   * transB with Bᵀ's rows (B's columns) 16-byte aligned along k: each lane reads its columns' k values
   * as vec4s (W / 4 loads per column per step instead of W scalars; per-lane loads are what costs on
   * lavapipe) and regroups them in registers. `vecC`: C is stored as vec4s (N % 4 == 0, C aligned).
   */
  vecBT?: boolean;
  vecC?: boolean;
  /** Values of k shared per broadcast step: 4 or 8, never above the adapter's minimum subgroup size. */
  lanes: SubgroupLanes;
  /**
   * The epilogue is chosen at run time (the default, except with storeT): the bias and the addend D
   * are always bound (the host binds A in their place when a product has none) and the uniform block's
   * `flags` (layout.ts: EPILOGUE_*) say which to add: bias[col] to every row, bias[row] to every
   * column, D in C's layout. One kernel then serves every epilogue: the large tiles take LLVM 1-2 min
   * each to compile on lavapipe (bench/results/compile-time-s25.md), and five epilogues made five of them.
   */
  runtimeEpilogue?: boolean;
  /** Writes A's row sums to E (MatmulAttrs.rowSumsA): each lane sums the A values it loads, a subgroupAdd per row at the end. */
  rowSums?: boolean;
  /** B is stored as float16 (packed words, read through B_at / Bv_at4). */
  bF16?: boolean;
  /** The bias is stored as float16. */
  biasF16?: boolean;
  /**
   * Store the product transposed: its element (r, c) goes to C's row c, column r (scalar stores;
   * the host computes Cᵀ = Bᵀ·Aᵀ when C has too few columns to fill the lanes).
   */
  storeT?: boolean;
}

export type SubgroupLanes = 4 | 8;
/** Invocations per workgroup (one 8-wide SIMD vector on lavapipe). */
export const WG_SIZE = 8;

/** Workgroup tile for the given parameters: [rows, columns]. */
export function subgroupTile(p: Pick<SubgroupMatmulParams, 'rows' | 'groups'>): [number, number] {
  return [p.rows, WG_SIZE * 4 * p.groups];
}

/**
 * The broadcast width this kernel can use on an adapter with subgroups of `min`..`max` lanes, or
 * null where it must not run: sizes must be known powers of two of at least 4 (an unknown size, 0,
 * is not trusted).
 */
export function subgroupLanesFor(min: number, max: number): SubgroupLanes | null {
  const pow2 = (v: number) => v > 0 && (v & (v - 1)) === 0;
  if (!pow2(min) || !pow2(max) || min > max || min < 4) return null;
  return min >= 8 ? 8 : 4;
}

export function subgroupMatmulWgsl(p: SubgroupMatmulParams): string {
  const R = p.rows, G = p.groups, W = p.lanes;
  if (W !== 4 && W !== 8) throw new Error(`subgroup matmul: lanes must be 4 or 8, got ${String(W)}`);
  if (p.storeT && (p.vecB || p.vecBT || p.vecC || p.runtimeEpilogue || p.rowSums)) throw new Error('subgroup matmul: a transposed store takes no vec4 B, bias, addend or row sums');
  const ep = !!p.runtimeEpilogue;
  if (p.vecBT && (!p.transB || p.vecB)) throw new Error('subgroup matmul: vec4 loads along k need a transposed B');
  const vecC = !!(p.vecB || p.vecC);
  // rows past M read row M-1 (a valid address) and are never stored: no select needed on A's row
  const aIdx = (r: number) => {
    const row = `min(row0 + ${r}u, u.m - 1u)`;
    return p.transA ? `ab + kk * u.lda + ${row}` : `ab + ${row} * u.lda + kk`;
  };
  // B for k = k0 + l, columns col0 + 4g .. +3; zero past K (a is zero there too, but B past the end
  // of the buffer could be anything, NaN included) and past N
  const bLoad = (l: number, g: number) => {
    const col = `col0 + ${4 * g}u`;
    const k = `k0 + ${l}u`;
    if (p.vecB) return `select(vec4<f32>(0.0), Bv_at4((bb + min(${k}, u.k - 1u) * u.ldb + min(${col}, u.n - 4u)) / 4u), ${k} < u.k && ${col} < u.n)`;
    const one = (j: number) => {
      const c = `${col} + ${j}u`;
      const cc = `min(${c}, u.n - 1u)`, kc = `min(${k}, u.k - 1u)`;
      const idx = p.transB ? `bb + ${cc} * u.ldb + ${kc}` : `bb + ${kc} * u.ldb + ${cc}`;
      return `select(0.0, B_at(${idx}), ${k} < u.k && ${c} < u.n)`;
    };
    return `vec4<f32>(${[0, 1, 2, 3].map(one).join(', ')})`;
  };
  const L: string[] = [];
  L.push('enable subgroups;');
  L.push('@group(0) @binding(0) var<storage, read> A: array<f32>;');
  L.push(p.vecB || p.vecBT ? readBindingVec4(1, 'Bv', !!p.bF16) : readBinding(1, 'B', !!p.bF16));
  // with vec4 B, N % 4 == 0: C rows are 16-byte aligned and a lane's 4 columns are all in or all out,
  // so results go out as vec4 stores (scalar scatters cost as much as the FMAs when K is small)
  L.push(vecC ? '@group(0) @binding(2) var<storage, read_write> Cv: array<vec4<f32>>;' : '@group(0) @binding(2) var<storage, read_write> C: array<f32>;');
  L.push(MATMUL_UNIFORMS_WGSL);
  L.push(matmulUniformBinding(ep, ep, !!p.rowSums, !!p.biasF16));
  L.push(`@compute @workgroup_size(${WG_SIZE}, 1, 1)`);
  L.push('fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) sgl: u32) {');
  L.push(`  let lane = sgl & ${W - 1}u;`);
  L.push(`  let row0 = wg.y * ${R}u;`);
  L.push(`  let col0 = (wg.x * ${WG_SIZE}u + li) * ${4 * G}u;`);
  L.push('  let bz = wg.z + u.z0;');
  L.push('  let ab = u.aoff + (bz / u.binner) * u.abs2 + (bz % u.binner) * u.abs;');
  L.push('  let bb = u.boff + (bz / u.binner) * u.bbs2 + (bz % u.binner) * u.bbs;');
  for (let r = 0; r < R; r++) for (let g = 0; g < G; g++) L.push(`  var c${r}_${g} = vec4<f32>(0.0);`);
  // row sums: lanes past `lanes` of a wider subgroup load copies of the same k, so only the first count
  if (p.rowSums) for (let r = 0; r < R; r++) L.push(`  var s${r} = 0.0;`);
  if (p.vecBT) {
    // this lane's B columns (rows of Bᵀ), clamped to a valid one; zeroed below when past N
    for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) {
      L.push(`  let okc${g}_${j} = vec4<bool>(col0 + ${4 * g + j}u < u.n);`);
      L.push(`  let bcol${g}_${j} = bb + min(col0 + ${4 * g + j}u, u.n - 1u) * u.ldb;`);
    }
    L.push('  let klast4 = (u.k - 1u) & ~3u;');
  }
  L.push(`  for (var k0 = 0u; k0 < u.k; k0 += ${W}u) {`);
  L.push('    let kin = k0 + lane < u.k;');
  L.push('    let kk = min(k0 + lane, u.k - 1u);');
  for (let r = 0; r < R; r++) L.push(`    let a${r} = select(0.0, A[${aIdx(r)}], kin);`);
  if (p.rowSums) {
    L.push(`    let own = sgl < ${W}u;`);
    for (let r = 0; r < R; r++) L.push(`    s${r} += select(0.0, a${r}, own);`);
  }
  if (p.vecBT) {
    // k0 + 4q .. + 3 of every column: zero past K (and past N) before they meet A
    for (let q = 0; q < W / 4; q++) {
      L.push(`    let kv${q} = vec4<u32>(k0 + ${4 * q}u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(u.k);`);
      for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) {
        L.push(`    let bt${g}_${j}_${q} = select(vec4<f32>(0.0), Bv_at4((bcol${g}_${j} + min(k0 + ${4 * q}u, klast4)) / 4u), kv${q} & okc${g}_${j});`);
      }
    }
    for (let l = 0; l < W; l++) for (let g = 0; g < G; g++) {
      L.push(`    let b${l}_${g} = vec4<f32>(${[0, 1, 2, 3].map((j) => `bt${g}_${j}_${l >> 2}[${l & 3}]`).join(', ')});`);
    }
  } else for (let l = 0; l < W; l++) for (let g = 0; g < G; g++) L.push(`    let b${l}_${g} = ${bLoad(l, g)};`);
  for (let r = 0; r < R; r++) {
    for (let l = 0; l < W; l++) {
      L.push(`    { let av = vec4<f32>(subgroupBroadcast(a${r}, ${l}u));`);
      for (let g = 0; g < G; g++) L.push(`      c${r}_${g} = fma(av, b${l}_${g}, c${r}_${g});`);
      L.push('    }');
    }
  }
  L.push('  }');
  // the store: C = alpha · AB, C rows ldc apart, batches at their two-level strides (then epiloguePass)
  L.push(`  let cb = ${MATMUL_C_BASE_WGSL};`);
  if (p.rowSums) {
    // uniform control flow for the subgroup reductions; the subgroup of invocation 0 covers every k
    for (let r = 0; r < R; r++) L.push(`  let t${r} = subgroupAdd(s${r});`);
    L.push('  if (wg.x == 0u && li == 0u) {');
    for (let r = 0; r < R; r++) L.push(`    if (row0 + ${r}u < u.m) { E[u.eoff + bz * u.m + row0 + ${r}u] = t${r}; }`);
    L.push('  }');
  }
  for (let r = 0; r < R; r++) {
    L.push(`  if (row0 + ${r}u < u.m) {`);
    L.push(`    let o = cb + (row0 + ${r}u) * u.ldc;`);
    const val = (g: number) => `c${r}_${g} * u.alpha`;
    if (p.storeT) for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) L.push(`    if (col0 + ${4 * g + j}u < u.n) { C[cb + (col0 + ${4 * g + j}u) * u.ldc + row0 + ${r}u] = (${val(g)})[${j}]; }`);
    else if (vecC) for (let g = 0; g < G; g++) L.push(`    if (col0 + ${4 * g}u < u.n) { Cv[(o + col0 + ${4 * g}u) / 4u] = ${val(g)}; }`);
    else for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) L.push(`    if (col0 + ${4 * g + j}u < u.n) { C[o + col0 + ${4 * g + j}u] = (${val(g)})[${j}]; }`);
    L.push('  }');
  }
  if (ep) epiloguePass(L, R, G, vecC);
  L.push('}');
  return L.join('\n');
}

/**
 * The runtime epilogue: after its tile is stored, the invocation reads back its own values (program
 * order makes its own writes visible to it) and adds what the uniforms' flags ask for, in a loop over
 * the tile's rows that LLVM does not unroll. Unrolled over the rows, as the products themselves are,
 * the epilogue's branches and gathers took LLVM up to 5x the kernel's compile time (64x4 tile with a
 * per-row bias and an addend: 664 s vs 124 s on a busy 2-core machine). Terms are added in the order
 * of the fused expression, alpha·AB + bias + D, and only when asked for (adding a zero would turn -0
 * into +0). Flags are uniform: the whole workgroup takes each branch or none does.
 */
function epiloguePass(L: string[], R: number, G: number, vecC: boolean): void {
  const biasBits = EPILOGUE_BIAS | EPILOGUE_BIAS_ROWS;
  L.push('  if (u.flags != 0u) {');
  L.push(`    let colBias = (u.flags & ${biasBits}u) == ${EPILOGUE_BIAS}u;`);
  L.push(`    let rowBias = (u.flags & ${biasBits}u) == ${biasBits}u;`);
  L.push(`    let addD = (u.flags & ${EPILOGUE_ADDEND}u) != 0u;`);
  L.push(`    let rend = min(${R}u, u.m - row0);`);
  L.push('    for (var r = 0u; r < rend; r++) {');
  L.push('      let o = cb + (row0 + r) * u.ldc;');
  L.push('      var br = 0.0;');
  L.push('      if (rowBias) { br = bias_at(u.biasoff + row0 + r); }');
  for (let g = 0; g < G; g++) {
    const col = `col0 + ${4 * g}u`;
    if (vecC) {
      // N % 4 == 0 and C aligned: a lane's 4 columns are all in or all out
      L.push(`      if (${col} < u.n) {`);
      L.push(`        var v = Cv[(o + ${col}) / 4u];`);
      L.push(`        if (colBias) { v += vec4<f32>(${[0, 1, 2, 3].map((j) => `bias_at(u.biasoff + ${col} + ${j}u)`).join(', ')}); }`);
      L.push('        if (rowBias) { v += vec4<f32>(br); }');
      L.push(`        if (addD) { v += vec4<f32>(${[0, 1, 2, 3].map((j) => `D[u.doff + o + ${col} + ${j}u]`).join(', ')}); }`);
      L.push(`        Cv[(o + ${col}) / 4u] = v;`);
      L.push('      }');
    } else {
      for (let j = 0; j < 4; j++) {
        const c = `${col} + ${j}u`;
        L.push(`      if (${c} < u.n) {`);
        L.push(`        var v = C[o + ${c}];`);
        L.push(`        if (colBias) { v += bias_at(u.biasoff + ${c}); }`);
        L.push('        if (rowBias) { v += br; }');
        L.push(`        if (addD) { v += D[u.doff + o + ${c}]; }`);
        L.push(`        C[o + ${c}] = v;`);
        L.push('      }');
      }
    }
  }
  L.push('    }');
  L.push('  }');
}
