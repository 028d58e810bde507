/**
 * The lavapipe matmul (GUIDE §1): per-lane storage loads are what costs on a CPU "GPU", so each
 * workgroup is one subgroup of 8 lanes owning 32 rows; for every 8 values of k each lane loads one A
 * element per row and the subgroup shares them with subgroupBroadcast (constant lanes), while each lane
 * loads its B columns once (vec4 when aligned) and reuses them across the 32 rows. No workgroup memory,
 * no barriers.
 */
export interface SubgroupMatmulParams {
  transA: boolean;
  transB: boolean;
  /** Column groups of 4 per lane (1 or 2). */
  groups: number;
  /** B rows are 16-byte aligned and N % 4 == 0 (vec4 loads). */
  vecB: boolean;
}

export const SG_ROWS = 32;
export const SG_LANES = 8;

export function subgroupMatmulWgsl(p: SubgroupMatmulParams): string {
  const aIdx = (row: string) => (p.transA ? `kk * u.m + ${row}` : `${row} * u.k + kk`);
  const G = p.groups;
  const R = SG_ROWS;
  const bLoad = (g: number) => {
    const col = `col0 + ${4 * g}u`;
    if (p.vecB) return `select(vec4<f32>(0.0), Bv[(bb + k * u.n + ${col}) / 4u], k < u.k && ${col} < u.n)`;
    const one = (j: number) => {
      const c = `${col} + ${j}u`;
      const idx = p.transB ? `bb + (${c}) * u.k + k` : `bb + k * u.n + ${c}`;
      return `select(0.0, B[${idx}], k < u.k && ${c} < u.n)`;
    };
    return `vec4<f32>(${[0, 1, 2, 3].map(one).join(', ')})`;
  };
  const L: string[] = [];
  L.push('enable subgroups;');
  L.push('@group(0) @binding(0) var<storage, read> A: array<f32>;');
  L.push(p.vecB ? '@group(0) @binding(1) var<storage, read> Bv: array<vec4<f32>>;' : '@group(0) @binding(1) var<storage, read> B: array<f32>;');
  L.push('@group(0) @binding(2) var<storage, read_write> C: array<f32>;');
  L.push('struct U { m: u32, n: u32, k: u32, batch: u32, aoff: u32, boff: u32, abs: u32, bbs: u32 };');
  L.push('@group(0) @binding(3) var<uniform> u: U;');
  L.push(`@compute @workgroup_size(${SG_LANES}, 1, 1)`);
  L.push('fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {');
  L.push(`  let row0 = wg.y * ${R}u;`);
  L.push(`  let col0 = (wg.x * ${SG_LANES}u + lane) * ${4 * G}u;`);
  L.push('  let ab = u.aoff + wg.z * u.abs;');
  L.push('  let bb = u.boff + wg.z * u.bbs;');
  for (let g = 0; g < G; g++) for (let r = 0; r < R; r++) L.push(`  var c${g}_${r} = vec4<f32>(0.0);`);
  L.push(`  for (var k0 = 0u; k0 < u.k; k0 += ${SG_LANES}u) {`);
  L.push('    let kk = k0 + lane;');
  L.push('    let kin = kk < u.k;');
  for (let r = 0; r < R; r++) L.push(`    let a${r} = select(0.0, A[ab + ${aIdx(`min(row0 + ${r}u, u.m - 1u)`)}], kin && row0 + ${r}u < u.m);`);
  for (let l = 0; l < SG_LANES; l++) {
    L.push('    {');
    L.push(`      let k = k0 + ${l}u;`);
    for (let g = 0; g < G; g++) L.push(`      let b${g} = ${bLoad(g)};`);
    for (let r = 0; r < R; r++) {
      L.push(`      { let av = vec4<f32>(subgroupBroadcast(a${r}, ${l}u));`);
      for (let g = 0; g < G; g++) L.push(`        c${g}_${r} = fma(av, b${g}, c${g}_${r});`);
      L.push('      }');
    }
    L.push('    }');
  }
  L.push('  }');
  L.push('  let cb = wg.z * u.m * u.n;');
  for (let r = 0; r < R; r++) {
    L.push(`  if (row0 + ${r}u < u.m) {`);
    L.push(`    let o = cb + (row0 + ${r}u) * u.n;`);
    for (let g = 0; g < G; g++) for (let j = 0; j < 4; j++) L.push(`    if (col0 + ${4 * g + j}u < u.n) { C[o + col0 + ${4 * g + j}u] = c${g}_${r}[${j}]; }`);
    L.push('  }');
  }
  L.push('}');
  return L.join('\n');
}
