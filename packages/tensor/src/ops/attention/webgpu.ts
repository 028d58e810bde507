// attention kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, bufferOf } from '../../backends/webgpu/webgpu-backend.js';
import { WG, UNROLL_MAX, NEG, chunks, UNIFORMS, MASK_AT, uniforms, loader, storer, headBase, denseRows, type Plan, type ChunkDims, type PassStrides, type RowStrides } from './webgpu-common.js';
import type { AttentionAttrs } from './index.js';
import { preferFusedAttention } from './preference.js';
import { bindRange, needsChunks, unitsPerChunk } from '../../backends/webgpu/windows.js';
import { matmulSubgroupLanes, matmulVariant } from '../matmul/webgpu.js';
import { env } from '../../env.js';
import { SG_WG, subgroupForwardWgsl, subgroupDqWgsl, subgroupDkvWgsl, type SubgroupPlan } from './webgpu-subgroup.js';

/**
 * Flash-attention style kernels, no workgroup memory and no barriers. Each invocation owns one
 * row — a query row in the forward and the dQ pass, a key row in the dK/dV pass — kept in
 * registers as vec4 chunks, and streams the other side's rows one at a time; all invocations of a
 * workgroup stream the same rows (workgroup-uniform addresses, cache hits on real GPUs). The
 * forward keeps a running max and sum per row (online softmax) and saves only logsumexp; the
 * backward recomputes probabilities from it. Memory is O(B·H·L·D), never [Lq, Lk].
 *
 * Loops over head-dim chunks take their trip count from the uniforms so that no compiler unrolls
 * them: on lavapipe, the LLVM JIT at the first dispatch took 10-100 s for the unrolled variants
 * (head dim 64) and ~0.5 s for these. Head dims only size the register arrays (pipeline key).
 * With head dims and offsets divisible by 4 the rows are bound as vec4 arrays (one load per chunk).
 */
/** Bindings: `rows` are [name, read_write, isRowBuffer]; row buffers are vec4 arrays in the vec4 plan. */
function header(p: Plan, binds: [string, boolean, boolean][], fns: string[]): string {
  return `${binds.map(([n, rw, row], i) => `@group(0) @binding(${i}) var<storage, ${rw ? 'read_write' : 'read'}> ${n}: array<${row && p.vec4 ? 'vec4<f32>' : 'f32'}>;`).join('\n')}
${UNIFORMS}
@group(0) @binding(${binds.length}) var<uniform> u: U;
${fns.join('\n')}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let bh = wid.y;`;
}

/** The chunk loops' trip counts: constants when unrolled, else from the uniforms (see the file comment). */
function tripCounts(p: Plan, wgsl: string): string {
  return wgsl.replace(/\bNC\b/g, p.unroll ? `${p.c}u` : 'u.nc').replace(/\bNV\b/g, p.unroll ? `${p.v}u` : 'u.nv');
}

export function forwardWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['o', true, true], ['lse', true, false]);
  return tripCounts(p, `${header(p, binds, [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), storer('o', 'u.dv', 't1', p.vec4)])}
  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('o', 'u.so1', 't1')}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  // keys visible to any row of this workgroup (uniform: every invocation streams the same rows);
  // q0: the first query of a chunk, for causal masks and additive masks
  ${p.mask === 'causal' ? `let kvEnd = min(u.lk, u.q0 + min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  var q: array<vec4<f32>, ${p.c}>;
  var acc: array<vec4<f32>, ${p.v}>;
  for (var c = 0u; c < NC; c++) { q[c] = ld_q(hq, iq, c) * u.scale; }
  for (var c = 0u; c < NV; c++) { acc[c] = vec4<f32>(0.0); }
  var m = ${NEG};
  var l = 0.0;
  for (var r = 0u; r < kvEnd; r++) {
    ${p.mask === 'causal' ? 'if (r > i + u.q0) { continue; }' : ''}
    var sc = 0.0;
    for (var c = 0u; c < NC; c++) { sc += dot(q[c], ld_k(hk, r, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('(iq + u.q0)', 'r')};` : ''}
    if (sc > m) {
      // new running max: rescale what was accumulated so far
      let corr = exp(m - sc);
      l *= corr;
      for (var c = 0u; c < NV; c++) { acc[c] *= corr; }
      m = sc;
    }
    let pr = exp(sc - m);
    l += pr;
    for (var c = 0u; c < NV; c++) { acc[c] += pr * ld_v(hv, r, c); }
  }
  if (i < u.lq) {
    let inv = 1.0 / l;
    for (var c = 0u; c < NV; c++) { st_o(ho, i, c, acc[c] * inv); }
    lse[u.so2 + bh * u.lq + i] = m + log(l);
  }
}`);
}

/** dQ pass: one invocation per query row; also writes Di = dO_i · O_i for the dK/dV pass. */
export function dqWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['o', false, true], ['lse', false, false], ['g', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dq', true, true], ['dvec', true, false]);
  const fns = [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), loader('o', 'u.dv', 'o', p.vec4), loader('g', 'u.dv', 'g', p.vec4), storer('dq', 'u.d', 't1', p.vec4)];
  return tripCounts(p, `${header(p, binds, fns)}
  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('o', 'u.ooff', 'o')} ${headBase('g', 'u.goff', 'g')} ${headBase('dq', 'u.so1', 't1')}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  ${p.mask === 'causal' ? `let kvEnd = min(u.lk, min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  let qr = bh * u.lq + iq;
  var q: array<vec4<f32>, ${p.c}>;
  var g: array<vec4<f32>, ${p.v}>;
  var dq_acc: array<vec4<f32>, ${p.c}>;
  for (var c = 0u; c < NC; c++) { q[c] = ld_q(hq, iq, c) * u.scale; dq_acc[c] = vec4<f32>(0.0); }
  var di = 0.0;
  for (var c = 0u; c < NV; c++) { g[c] = ld_g(hg, iq, c); di += dot(g[c], ld_o(ho, iq, c)); }
  let li = lse[u.loff + qr];
  for (var r = 0u; r < kvEnd; r++) {
    ${p.mask === 'causal' ? 'if (r > i) { continue; }' : ''}
    var sc = 0.0;
    for (var c = 0u; c < NC; c++) { sc += dot(q[c], ld_k(hk, r, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('iq', 'r')};` : ''}
    let pr = exp(sc - li);
    var dp = 0.0;
    for (var c = 0u; c < NV; c++) { dp += dot(g[c], ld_v(hv, r, c)); }
    let ds = pr * (dp - di);
    for (var c = 0u; c < NC; c++) { dq_acc[c] += ds * ld_k(hk, r, c); }
  }
  if (i < u.lq) {
    for (var c = 0u; c < NC; c++) { st_dq(hdq, i, c, dq_acc[c] * u.scale); }
    dvec[u.so2 + bh * u.lq + i] = di;
  }
}`);
}

/** dK/dV pass: one invocation per key row, streaming the query rows that see it. */
export function dkvWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['lse', false, false], ['g', false, true], ['dvec', false, false]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dk', true, true], ['dvo', true, true]);
  const fns = [loader('q', 'u.d', 'q', p.vec4), loader('k', 'u.d', 'k', p.vec4), loader('v', 'u.dv', 'v', p.vec4), loader('g', 'u.dv', 'g', p.vec4), storer('dk', 'u.d', 't1', p.vec4), storer('dvo', 'u.dv', 't2', p.vec4)];
  return tripCounts(p, `${header(p, binds, fns)}
  ${headBase('q', 'u.qoff', 'q')} ${headBase('k', 'u.koff', 'k')} ${headBase('v', 'u.voff', 'v')} ${headBase('g', 'u.goff', 'g')} ${headBase('dk', 'u.so1', 't1')} ${headBase('dvo', 'u.so2', 't2')}
  let j = wid.x * ${WG}u + lid.x;
  let jk = min(j, u.lk - 1u);
  // causal: only queries i >= j see key j; start at the workgroup's first key (uniform)
  ${p.mask === 'causal' ? `let iStart = wid.x * ${WG}u;` : 'let iStart = 0u;'}
  var kk: array<vec4<f32>, ${p.c}>;
  var vv: array<vec4<f32>, ${p.v}>;
  var dk_acc: array<vec4<f32>, ${p.c}>;
  var dv_acc: array<vec4<f32>, ${p.v}>;
  for (var c = 0u; c < NC; c++) { kk[c] = ld_k(hk, jk, c) * u.scale; dk_acc[c] = vec4<f32>(0.0); }
  for (var c = 0u; c < NV; c++) { vv[c] = ld_v(hv, jk, c); dv_acc[c] = vec4<f32>(0.0); }
  for (var r = iStart; r < u.lq; r++) {
    ${p.mask === 'causal' ? 'if (jk > r) { continue; }' : ''}
    let qr = bh * u.lq + r;
    var sc = 0.0;
    for (var c = 0u; c < NC; c++) { sc += dot(kk[c], ld_q(hq, r, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('r', 'jk')};` : ''}
    let pr = exp(sc - lse[u.loff + qr]);
    var dp = 0.0;
    for (var c = 0u; c < NV; c++) { let gc = ld_g(hg, r, c); dp += dot(vv[c], gc); dv_acc[c] += pr * gc; }
    let ds = pr * (dp - dvec[u.doff + qr]);
    for (var c = 0u; c < NC; c++) { dk_acc[c] += ds * ld_q(hq, r, c); }
  }
  if (j < u.lk) {
    for (var c = 0u; c < NC; c++) { st_dk(hdk, j, c, dk_acc[c] * u.scale); }
    for (var c = 0u; c < NV; c++) { st_dvo(hdvo, j, c, dv_acc[c]); }
  }
}`);
}

function plan(a: AttentionAttrs, rowViews: View[], strides: RowStrides[]): Plan {
  const vec4 = a.d % 4 === 0 && a.dv % 4 === 0 && rowViews.every((v) => v.offset % 4 === 0) && strides.every((r) => r.every((x) => x % 4 === 0));
  const c = chunks(a.d), v = chunks(a.dv);
  return { c, v, vec4, mask: a.mask, unroll: c <= UNROLL_MAX && v <= UNROLL_MAX };
}
/** A row view's [batch, head, row] strides (its last dim is contiguous: index.ts copies any other). */
const rowsOf = (t: View): RowStrides => [t.strides[0]!, t.strides[1]!, t.strides[2]!];
/** Whether rows at these strides sit where a contiguous [B, H, L, D] has them (strides of size-1 dims do not matter). */
const isDense = (r: RowStrides, a: AttentionAttrs, l: number, d: number): boolean => {
  const c = denseRows(a.heads, l, d);
  return (a.bh <= a.heads || r[0] === c[0]) && (a.heads === 1 || r[1] === c[1]) && (l === 1 || r[2] === c[2]);
};
/** Chunks are windows over whole heads' rows: only the dense layout (index.ts sends no other this large). */
function assertDense(a: AttentionAttrs, rows: [RowStrides, number, number][]): void {
  if (!rows.every(([r, l, d]) => isDense(r, a, l, d))) throw new Error('attention: tensors larger than one binding must be contiguous [B, H, L, D]');
}
const planKey = (p: Plan): string => `${p.c}:${p.v}:${p.vec4}:${p.mask}:${p.unroll}`;

/** Which attention kernels run: 'rows' (one row per invocation, uniform streaming) or 'subgroup' (webgpu-subgroup.ts). */
export type AttentionKernel = 'rows' | 'subgroup';
const kernelOverride = new WeakMap<WebGPUBackend, AttentionKernel>();

/**
 * Forces the kernel on this backend (tests, benchmarks); undefined restores the default: 'subgroup' where
 * the matmul runs its subgroup variant (the adapter was measured to want broadcasts over per-lane loads),
 * else 'rows'. FOLIAR_ATTENTION_KERNEL=rows|subgroup forces it for the process.
 */
export function setAttentionKernel(be: WebGPUBackend, k: AttentionKernel | undefined): void {
  if (k === 'subgroup' && matmulSubgroupLanes(be) === null) throw new Error(`attention: the subgroup kernel needs subgroups of at least 4 lanes; this adapter has ${be.rt.subgroups ? `${be.rt.info.subgroupMinSize}..${be.rt.info.subgroupMaxSize}` : 'no subgroups'}`);
  if (k === undefined) kernelOverride.delete(be);
  else kernelOverride.set(be, k);
}

/** The subgroup plan when that kernel serves this problem (head dims up to 16, no chunking), else null. */
function subgroupPlan(be: WebGPUBackend, p: Plan): SubgroupPlan | null {
  const lanes = matmulSubgroupLanes(be);
  if (!p.unroll || lanes === null) return null;
  const forced = env('FOLIAR_ATTENTION_KERNEL');
  const k = kernelOverride.get(be) ?? (forced === 'rows' || forced === 'subgroup' ? forced : matmulVariant(be) === 'subgroup' ? 'subgroup' : 'rows');
  return k === 'subgroup' ? { ...p, lanes } : null;
}

// 'auto' attention takes the fused path wherever the subgroup kernel serves it: forward + backward of
// 8 heads x batch 8 at 256 tokens, head dim 16, measured 1.2-1.5x faster than the math path, at 64 tokens
// on par (inputs copied to the contiguous layout the kernels read included)
preferFusedAttention('webgpu', (be, d, dv) => subgroupPlan(be as WebGPUBackend, { c: chunks(d), v: chunks(dv), vec4: false, unroll: chunks(d) <= UNROLL_MAX && chunks(dv) <= UNROLL_MAX, mask: 'none' }) !== null);

function checkGrid(a: AttentionAttrs, rows: number, wg = WG): [number, number] {
  const x = Math.ceil(rows / wg);
  if (a.bh > 65535 || x > 65535) throw new RangeError(`attention: ${a.bh} heads x ${rows} rows exceeds the dispatch grid (65535 per dimension)`);
  return [x, a.bh];
}

/**
 * Chunks for tensors larger than one binding (issue 16): groups of whole heads when one head's rows fit
 * a binding, else (forward only) query chunks within each head. null: everything fits, one dispatch.
 */
function chunkPlan(be: WebGPUBackend, a: AttentionAttrs, buffers: GPUBuffer[], forward: boolean): ChunkDims[] | null {
  if (!needsChunks(be, buffers)) return null;
  const perHead = 4 * Math.max(a.lq * a.d, a.lk * a.d, a.lk * a.dv, a.lq * a.dv);
  const heads = unitsPerChunk(be, perHead);
  const out: ChunkDims[] = [];
  if (perHead + be.rt.bindingAlignment <= be.rt.maxBindingBytes) {
    for (let b0 = 0; b0 < a.bh; b0 += heads) out.push({ bh: Math.min(heads, a.bh - b0), lq: a.lq, bh0: b0, q0: 0 });
    return out;
  }
  const kvBytes = 4 * a.lk * Math.max(a.d, a.dv);
  if (!forward || kvBytes + be.rt.bindingAlignment > be.rt.maxBindingBytes) {
    throw new RangeError(
      `attention${forward ? '' : ' backward'}: one head's ${forward ? 'keys and values' : 'rows'} (${forward ? kvBytes : perHead} bytes) exceed one binding (${be.rt.maxBindingBytes} bytes); ` +
        (forward ? 'split the keys across calls' : 'the backward splits by whole heads only'),
    );
  }
  const rows = unitsPerChunk(be, 4 * Math.max(a.d, a.dv));
  for (let b0 = 0; b0 < a.bh; b0++) for (let q0 = 0; q0 < a.lq; q0 += rows) out.push({ bh: 1, lq: Math.min(rows, a.lq - q0), bh0: b0, q0 });
  return out;
}

export const attention_forward: KernelFn<WebGPUBackend, 'attention_forward'> = (be, inputs, attrs) => {
  const a = attrs;
  const out = be.alloc('float32', a.bh * a.lq * a.dv);
  const lse = be.alloc('float32', a.bh * a.lq);
  if (a.bh * a.lq === 0 || a.dv === 0) return [out, lse];
  if (a.lk === 0) throw new RangeError('attention: no keys (Lk = 0)');
  const [q, k, v] = [inputs[0]!, inputs[1]!, inputs[2]!];
  const m = a.mask === 'add' ? inputs[3]! : null;
  const o = a.outStrides?.o ?? denseRows(a.heads, a.lq, a.dv);
  const st: PassStrides = { q: rowsOf(q), k: rowsOf(k), v: rowsOf(v), t1: o };
  const p = plan(a, [q, k, v], [st.q, st.k, st.v, o]);
  const key = `attn_fwd:${planKey(p)}`;
  const bufs = [bufferOf(q), bufferOf(k), bufferOf(v), out.buffer, lse.buffer];
  const chunks = chunkPlan(be, a, bufs, true);
  if (!chunks) {
    const sp = subgroupPlan(be, p);
    be.rt.dispatch({
      name: sp ? 'attention_sg_forward' : 'attention_forward',
      key: sp ? `attn_fwd_sg:${planKey(p)}:${sp.lanes}` : key,
      wgsl: () => (sp ? subgroupForwardWgsl(sp) : forwardWgsl(p)),
      buffers: [bufferOf(q), bufferOf(k), bufferOf(v), ...(m ? [bufferOf(m)] : []), out.buffer, lse.buffer],
      uniforms: uniforms(a, p, { q: q.offset, k: k.offset, v: v.offset, m: m?.offset ?? 0 }, st),
      workgroups: checkGrid(a, a.lq, sp ? SG_WG : WG),
    });
    return [out, lse];
  }
  assertDense(a, [[st.q, a.lq, a.d], [st.k, a.lk, a.d], [st.v, a.lk, a.dv], [o, a.lq, a.dv]]);
  for (const ch of chunks) {
    const rowQ = ch.bh0 * a.lq + ch.q0, rows = ch.bh * ch.lq;
    const bq = bindRange(be, bufs[0]!, q.offset + rowQ * a.d, rows * a.d, 4);
    const bk = bindRange(be, bufs[1]!, k.offset + ch.bh0 * a.lk * a.d, ch.bh * a.lk * a.d, 4);
    const bv = bindRange(be, bufs[2]!, v.offset + ch.bh0 * a.lk * a.dv, ch.bh * a.lk * a.dv, 4);
    const bo = bindRange(be, out.buffer, rowQ * a.dv, rows * a.dv, 4);
    const bl = bindRange(be, lse.buffer, rowQ, rows, 4);
    be.rt.dispatch({
      name: 'attention_forward',
      key,
      wgsl: () => forwardWgsl(p),
      buffers: [bq.binding, bk.binding, bv.binding, ...(m ? [bufferOf(m)] : []), bo.binding, bl.binding],
      uniforms: uniforms(a, p, { q: bq.offset, k: bk.offset, v: bv.offset, m: m?.offset ?? 0, s1: bo.offset, s2: bl.offset }, st, ch),
      workgroups: checkGrid({ ...a, bh: ch.bh }, ch.lq),
    });
  }
  return [out, lse];
};

export const attention_backward: KernelFn<WebGPUBackend, 'attention_backward'> = (be, inputs, attrs) => {
  const a = attrs;
  const [q, k, v, o, lse, g] = [inputs[0]!, inputs[1]!, inputs[2]!, inputs[3]!, inputs[4]!, inputs[5]!];
  const m = a.mask === 'add' ? inputs[6]! : null;
  const dq = be.alloc('float32', a.bh * a.lq * a.d);
  const dk = be.alloc('float32', a.bh * a.lk * a.d);
  const dv = be.alloc('float32', a.bh * a.lk * a.dv);
  if (a.bh === 0 || a.lk === 0 || a.lq === 0 || a.d === 0 || a.dv === 0) {
    for (const [s, n] of [[dq, a.bh * a.lq * a.d], [dk, a.bh * a.lk * a.d], [dv, a.bh * a.lk * a.dv]] as const) {
      if (n > 0) be.run('elementwise', [], { op: 'fill', params: [0], shape: [n], out: { storage: s, shape: [n], strides: [1], offset: 0, dtype: 'float32' } });
    }
    return [dq, dk, dv];
  }
  const os = a.outStrides;
  const [sdq, sdk, sdv] = [os?.dq ?? denseRows(a.heads, a.lq, a.d), os?.dk ?? denseRows(a.heads, a.lk, a.d), os?.dv ?? denseRows(a.heads, a.lk, a.dv)];
  const st: PassStrides = { q: rowsOf(q), k: rowsOf(k), v: rowsOf(v), o: rowsOf(o), g: rowsOf(g) };
  const p = plan(a, [q, k, v, o, g], [st.q, st.k, st.v, st.o!, st.g!, sdq, sdk, sdv]);
  const dvec = be.alloc('float32', a.bh * a.lq);
  const mb = m ? [bufferOf(m)] : [];
  const [Q, K, V, O, L, G] = [q, k, v, o, lse, g].map(bufferOf) as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  const planned = chunkPlan(be, a, [Q, K, V, O, L, G, dq.buffer, dk.buffer, dv.buffer, dvec.buffer], false);
  const sp = planned ? null : subgroupPlan(be, p);
  if (planned) assertDense(a, [[st.q, a.lq, a.d], [st.k, a.lk, a.d], [st.v, a.lk, a.dv], [st.o!, a.lq, a.dv], [st.g!, a.lq, a.dv], [sdq, a.lq, a.d], [sdk, a.lk, a.d], [sdv, a.lk, a.dv]]);
  const chunks = planned ?? [{ bh: a.bh, lq: a.lq, bh0: 0, q0: 0 }];
  for (const ch of chunks) {
    // whole heads [bh0, bh0 + bh): every buffer is a window over those heads' rows (or the whole buffer)
    const qr = ch.bh0 * a.lq, kr = ch.bh0 * a.lk, nq = ch.bh * a.lq, nk = ch.bh * a.lk;
    const bq = bindRange(be, Q, q.offset + qr * a.d, nq * a.d, 4);
    const bk = bindRange(be, K, k.offset + kr * a.d, nk * a.d, 4);
    const bv = bindRange(be, V, v.offset + kr * a.dv, nk * a.dv, 4);
    const bo = bindRange(be, O, o.offset + qr * a.dv, nq * a.dv, 4);
    const bl = bindRange(be, L, lse.offset + qr, nq, 4);
    const bg = bindRange(be, G, g.offset + qr * a.dv, nq * a.dv, 4);
    const bdq = bindRange(be, dq.buffer, qr * a.d, nq * a.d, 4);
    const bdvec = bindRange(be, dvec.buffer, qr, nq, 4);
    const bdk = bindRange(be, dk.buffer, kr * a.d, nk * a.d, 4);
    const bdv = bindRange(be, dv.buffer, kr * a.dv, nk * a.dv, 4);
    const reads = { q: bq.offset, k: bk.offset, v: bv.offset, m: m?.offset ?? 0, o: bo.offset, l: bl.offset, g: bg.offset };
    be.rt.dispatch({
      name: sp ? 'attention_sg_backward_dq' : 'attention_backward_dq',
      key: sp ? `attn_dq_sg:${planKey(p)}:${sp.lanes}` : `attn_dq:${planKey(p)}`,
      wgsl: () => (sp ? subgroupDqWgsl(sp) : dqWgsl(p)),
      buffers: [bq.binding, bk.binding, bv.binding, bo.binding, bl.binding, bg.binding, ...mb, bdq.binding, bdvec.binding],
      uniforms: uniforms(a, p, { ...reads, s1: bdq.offset, s2: bdvec.offset }, { ...st, t1: sdq }, ch),
      workgroups: checkGrid({ ...a, bh: ch.bh }, a.lq, sp ? SG_WG : WG),
    });
    be.rt.dispatch({
      name: sp ? 'attention_sg_backward_dkv' : 'attention_backward_dkv',
      key: sp ? `attn_dkv_sg:${planKey(p)}:${sp.lanes}` : `attn_dkv:${planKey(p)}`,
      wgsl: () => (sp ? subgroupDkvWgsl(sp) : dkvWgsl(p)),
      buffers: [bq.binding, bk.binding, bv.binding, bl.binding, bg.binding, bdvec.binding, ...mb, bdk.binding, bdv.binding],
      uniforms: uniforms(a, p, { ...reads, s1: bdk.offset, s2: bdv.offset, d: bdvec.offset }, { ...st, t1: sdk, t2: sdv }, ch, true),
      workgroups: checkGrid({ ...a, bh: ch.bh }, a.lk, sp ? SG_WG : WG),
    });
  }
  dvec.release();
  return [dq, dk, dv];
};
