/**
 * Attention for small heads on CPU-like adapters (lavapipe; GUIDE §1). The row kernels in webgpu.ts
 * stream the other side's rows at workgroup-uniform addresses, which costs nothing on a GPU but is a
 * full 8-lane gather per component on lavapipe: inside a loop its JIT loads even uniform addresses
 * per lane (measured: with the loads replaced by registers the forward ran 4.7x faster). Here each
 * invocation still owns one row, but the streamed rows come in blocks of `lanes`: lane l loads row
 * r0 + l once, and every lane reads it from lane l through subgroupBroadcast (a register shuffle), so
 * a block costs one gather per component instead of `lanes`. The online softmax takes one running
 * max per block (no divergent branch per key).
 *
 * Only head dims up to 4·UNROLL_MAX (16): every chunk loop is unrolled and the rows live in
 * registers. Lanes: 4 or 8, at most the adapter's minimum subgroup size (as the subgroup matmul);
 * the workgroup is one 8-wide SIMD vector on lavapipe, and the loading role comes from the subgroup
 * invocation id, so 4-lane subgroups (two per workgroup) each load the same block.
 */
import { NEG, UNIFORMS, MASK_AT, loader, storer, headBase, type Plan } from './webgpu-common.js';
import type { SubgroupLanes } from '../matmul/webgpu-subgroup.js';

/** Invocations per workgroup: one 8-wide SIMD vector on lavapipe. */
export const SG_WG = 8;

export interface SubgroupPlan extends Plan {
  lanes: SubgroupLanes;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function header(p: SubgroupPlan, binds: [string, boolean, boolean][], fns: string[]): string {
  return `enable subgroups;
${binds.map(([n, rw, row], i) => `@group(0) @binding(${i}) var<storage, ${rw ? 'read_write' : 'read'}> ${n}: array<${row && p.vec4 ? 'vec4<f32>' : 'f32'}>;`).join('\n')}
${UNIFORMS}
@group(0) @binding(${binds.length}) var<uniform> u: U;
${fns.join('\n')}
@compute @workgroup_size(${SG_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sgl: u32) {
  let bh = wid.y;
  let sl = sgl % ${p.lanes}u;`;
}

/** `name` + chunk index for chunks 0..n-1, as a statement list. */
const each = (n: number, f: (c: number) => string): string => range(n).map(f).join(' ');
/** dot(x, y) summed over n chunks (names x0.., y0..). */
const dots = (n: number, x: string, y: string): string => range(n).map((c) => `dot(${x}${c}, ${y}${c})`).join(' + ');
/** Chunk c of lane j's row `src`, read by every lane. */
const bc = (src: string, c: number, j: number): string => `subgroupBroadcast(${src}${c}, ${j}u)`;

export function subgroupForwardWgsl(p: SubgroupPlan): string {
  const W = p.lanes;
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['o', true, true], ['lse', true, false]);
  const fns = [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), storer('o', 'u.dv', 't1', p.vec4)];
  const L: string[] = [header(p, binds, fns)];
  L.push(`  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('o', 'u.so1', 't1')}`);
  L.push(`  let i = wid.x * ${SG_WG}u + lid;`);
  L.push('  let iq = min(i, u.lq - 1u);');
  L.push(p.mask === 'causal' ? `  let kvEnd = min(u.lk, u.q0 + min(wid.x * ${SG_WG}u + ${SG_WG}u, u.lq));` : '  let kvEnd = u.lk;');
  L.push(`  ${each(p.c, (c) => `let q${c} = ld_q(hq, iq, ${c}u) * u.scale;`)}`);
  L.push(`  ${each(p.v, (c) => `var a${c} = vec4<f32>(0.0);`)}`);
  L.push(`  var m = ${NEG};`);
  L.push('  var l = 0.0;');
  L.push(`  for (var r0 = 0u; r0 < kvEnd; r0 += ${W}u) {`);
  L.push('    let kr = min(r0 + sl, u.lk - 1u);');
  L.push(`    ${each(p.c, (c) => `let k${c} = ld_k(hk, kr, ${c}u);`)}`);
  L.push(`    ${each(p.v, (c) => `let v${c} = ld_v(hv, kr, ${c}u);`)}`);
  for (let j = 0; j < W; j++) {
    // a key past the end, or hidden by the causal mask, gets probability 0 (below), score NEG here
    const vis = p.mask === 'causal' ? `r0 + ${j}u < kvEnd && r0 + ${j}u <= i + u.q0` : `r0 + ${j}u < kvEnd`;
    L.push(`    let in${j} = ${vis};`);
    const add = p.mask === 'add' ? ` + ${MASK_AT('(iq + u.q0)', `min(r0 + ${j}u, u.lk - 1u)`)}` : '';
    L.push(`    let s${j} = select(${NEG}, ${range(p.c).map((c) => `dot(q${c}, ${bc('k', c, j)})`).join(' + ')}${add}, in${j});`);
  }
  L.push(`    let mb = max(m, max(${range(W).map((j) => `s${j}`).reduce((a, b) => `max(${a}, ${b})`)}, ${NEG}));`);
  L.push('    let corr = exp(m - mb);');
  for (let j = 0; j < W; j++) L.push(`    let p${j} = select(0.0, exp(s${j} - mb), in${j});`);
  L.push(`    l = l * corr + ${range(W).map((j) => `p${j}`).join(' + ')};`);
  for (let c = 0; c < p.v; c++) L.push(`    a${c} = a${c} * corr${range(W).map((j) => ` + p${j} * ${bc('v', c, j)}`).join('')};`);
  L.push('    m = mb;');
  L.push('  }');
  L.push('  if (i < u.lq) {');
  L.push('    let inv = 1.0 / l;');
  L.push(`    ${each(p.v, (c) => `st_o(ho, i, ${c}u, a${c} * inv);`)}`);
  L.push('    lse[u.so2 + bh * u.lq + i] = m + log(l);');
  L.push('  }');
  L.push('}');
  return L.join('\n');
}

/** dQ pass: one invocation per query row, key rows shared in blocks; also writes Di = dO_i · O_i. */
export function subgroupDqWgsl(p: SubgroupPlan): string {
  const W = p.lanes;
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['o', false, true], ['lse', false, false], ['g', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dq', true, true], ['dvec', true, false]);
  const fns = [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), loader('o', 'u.dv', 'o', p.vec4), loader('g', 'u.dv', 'g', p.vec4), storer('dq', 'u.d', 't1', p.vec4)];
  const L: string[] = [header(p, binds, fns)];
  L.push(`  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('o', 'u.ooff', 'o')} ${headBase('g', 'u.goff', 'g')} ${headBase('dq', 'u.so1', 't1')}`);
  L.push(`  let i = wid.x * ${SG_WG}u + lid;`);
  L.push('  let iq = min(i, u.lq - 1u);');
  L.push(p.mask === 'causal' ? `  let kvEnd = min(u.lk, min(wid.x * ${SG_WG}u + ${SG_WG}u, u.lq));` : '  let kvEnd = u.lk;');
  L.push('  let qr = bh * u.lq + iq;');
  L.push(`  ${each(p.c, (c) => `let q${c} = ld_q(hq, iq, ${c}u) * u.scale; var dq${c} = vec4<f32>(0.0);`)}`);
  L.push(`  ${each(p.v, (c) => `let g${c} = ld_g(hg, iq, ${c}u);`)}`);
  L.push(`  let di = ${range(p.v).map((c) => `dot(g${c}, ld_o(ho, iq, ${c}u))`).join(' + ')};`);
  L.push('  let li = lse[u.loff + qr];');
  L.push(`  for (var r0 = 0u; r0 < kvEnd; r0 += ${W}u) {`);
  L.push('    let kr = min(r0 + sl, u.lk - 1u);');
  L.push(`    ${each(p.c, (c) => `let k${c} = ld_k(hk, kr, ${c}u);`)}`);
  L.push(`    ${each(p.v, (c) => `let v${c} = ld_v(hv, kr, ${c}u);`)}`);
  for (let j = 0; j < W; j++) {
    const vis = p.mask === 'causal' ? `r0 + ${j}u < kvEnd && r0 + ${j}u <= i` : `r0 + ${j}u < kvEnd`;
    const add = p.mask === 'add' ? ` + ${MASK_AT('iq', `min(r0 + ${j}u, u.lk - 1u)`)}` : '';
    L.push(`    { ${each(p.c, (c) => `let kb${c} = ${bc('k', c, j)};`)}`);
    L.push(`      let pr = select(0.0, exp(${dots(p.c, 'q', 'kb')}${add} - li), ${vis});`);
    L.push(`      let ds = pr * (${range(p.v).map((c) => `dot(g${c}, ${bc('v', c, j)})`).join(' + ')} - di);`);
    L.push(`      ${each(p.c, (c) => `dq${c} += ds * kb${c};`)} }`);
  }
  L.push('  }');
  L.push('  if (i < u.lq) {');
  L.push(`    ${each(p.c, (c) => `st_dq(hdq, i, ${c}u, dq${c} * u.scale);`)}`);
  L.push('    dvec[u.so2 + bh * u.lq + i] = di;');
  L.push('  }');
  L.push('}');
  return L.join('\n');
}

/** dK/dV pass: one invocation per key row, query rows (and their lse, Di) shared in blocks. */
export function subgroupDkvWgsl(p: SubgroupPlan): string {
  const W = p.lanes;
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['lse', false, false], ['g', false, true], ['dvec', false, false]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dk', true, true], ['dvo', true, true]);
  const fns = [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), loader('g', 'u.dv', 'g', p.vec4), storer('dk', 'u.d', 't1', p.vec4), storer('dvo', 'u.dv', 't2', p.vec4)];
  const L: string[] = [header(p, binds, fns)];
  L.push(`  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('g', 'u.goff', 'g')} ${headBase('dk', 'u.so1', 't1')} ${headBase('dvo', 'u.so2', 't2')}`);
  L.push(`  let j = wid.x * ${SG_WG}u + lid;`);
  L.push('  let jk = min(j, u.lk - 1u);');
  // causal: only queries i >= j see key j; start at the workgroup's first key (uniform)
  L.push(p.mask === 'causal' ? `  let iStart = wid.x * ${SG_WG}u;` : '  let iStart = 0u;');
  L.push(`  ${each(p.c, (c) => `let k${c} = ld_k(hk, jk, ${c}u) * u.scale; var dk${c} = vec4<f32>(0.0);`)}`);
  L.push(`  ${each(p.v, (c) => `let v${c} = ld_v(hv, jk, ${c}u); var dv${c} = vec4<f32>(0.0);`)}`);
  L.push(`  for (var i0 = iStart; i0 < u.lq; i0 += ${W}u) {`);
  L.push('    let qi = min(i0 + sl, u.lq - 1u);');
  L.push('    let qr = bh * u.lq + qi;');
  L.push(`    ${each(p.c, (c) => `let q${c} = ld_q(hq, qi, ${c}u);`)}`);
  L.push(`    ${each(p.v, (c) => `let g${c} = ld_g(hg, qi, ${c}u);`)}`);
  L.push('    let lr = lse[u.loff + qr];');
  L.push('    let dr = dvec[u.doff + qr];');
  for (let t = 0; t < W; t++) {
    const vis = p.mask === 'causal' ? `i0 + ${t}u < u.lq && jk <= i0 + ${t}u` : `i0 + ${t}u < u.lq`;
    const add = p.mask === 'add' ? ` + ${MASK_AT(`min(i0 + ${t}u, u.lq - 1u)`, 'jk')}` : '';
    L.push(`    { ${each(p.c, (c) => `let qb${c} = ${bc('q', c, t)};`)} ${each(p.v, (c) => `let gb${c} = ${bc('g', c, t)};`)}`);
    L.push(`      let pr = select(0.0, exp(${dots(p.c, 'k', 'qb')}${add} - subgroupBroadcast(lr, ${t}u)), ${vis});`);
    L.push(`      ${each(p.v, (c) => `dv${c} += pr * gb${c};`)}`);
    L.push(`      let ds = pr * (${dots(p.v, 'v', 'gb')} - subgroupBroadcast(dr, ${t}u));`);
    L.push(`      ${each(p.c, (c) => `dk${c} += ds * qb${c};`)} }`);
  }
  L.push('  }');
  L.push('  if (j < u.lk) {');
  L.push(`    ${each(p.c, (c) => `st_dk(hdk, j, ${c}u, dk${c} * u.scale);`)}`);
  L.push(`    ${each(p.v, (c) => `st_dvo(hdvo, j, ${c}u, dv${c});`)}`);
  L.push('  }');
  L.push('}');
  return L.join('\n');
}
