// attention kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf } from '../../backends/webgpu/webgpu-backend.js';
import type { AttentionAttrs } from './index.js';
import { bindRange, needsChunks, unitsPerChunk } from '../../backends/webgpu/windows.js';

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
const WG = 64;
const NEG = '-3.4028234e38';

const chunks = (d: number): number => Math.ceil(d / 4);

interface Plan {
  c: number;
  v: number;
  vec4: boolean;
  mask: AttentionAttrs['mask'];
}

const UNIFORMS = `struct U { bh: u32, heads: u32, lq: u32, lk: u32, d: u32, dv: u32, nc: u32, nv: u32,
  qoff: u32, koff: u32, voff: u32, moff: u32, ms0: u32, ms1: u32, ms2: u32, ms3: u32,
  ooff: u32, loff: u32, goff: u32, scale: f32, bh0: u32, q0: u32, so1: u32, so2: u32, doff: u32 };`;

/**
 * Offsets (elements) of every buffer a pass reads or writes: the views' offsets, plus the remainders of
 * window bindings when a tensor larger than one binding runs in chunks (s1/s2: the pass's two stored
 * buffers, d: dvec read by the dK/dV pass). A chunk covers heads [bh0, bh0 + bh) and, in the forward,
 * queries [q0, q0 + lq): the mask is indexed globally through them.
 */
interface Offsets { q: number; k: number; v: number; m: number; o?: number; l?: number; g?: number; s1?: number; s2?: number; d?: number }
interface ChunkDims { bh: number; lq: number; bh0: number; q0: number }

/** Offsets of the vec4-bound buffers are in vec4 units; of scalar-bound ones in elements (`s2Row`: s2 is a row buffer). */
function uniforms(a: AttentionAttrs, p: Plan, offs: Offsets, ch: ChunkDims = { bh: a.bh, lq: a.lq, bh0: 0, q0: 0 }, s2Row = false): Uint32Array {
  const ms = a.maskStrides ?? [0, 0, 0, 0];
  const div = p.vec4 ? 4 : 1;
  return new UniformWriter()
    .u32(ch.bh, a.heads, ch.lq, a.lk, a.d, a.dv, p.c, p.v)
    .u32(offs.q / div, offs.k / div, offs.v / div, offs.m, ...ms)
    .u32((offs.o ?? 0) / div, offs.l ?? 0, (offs.g ?? 0) / div)
    .f32(a.scale)
    .u32(ch.bh0, ch.q0, (offs.s1 ?? 0) / div, (offs.s2 ?? 0) / (s2Row ? div : 1), offs.d ?? 0)
    .build();
}

/**
 * fn ld_<buf>(row, c) -> vec4: chunk c of row `row` (a row index into a [rows, dim] buffer
 * starting at offset `off`), zero past the row's end.
 */
function loader(buf: string, dim: string, off: string, vec4: boolean): string {
  if (vec4) return `fn ld_${buf}(row: u32, c: u32) -> vec4<f32> { return ${buf}[${off} + row * (${dim} / 4u) + c]; }`;
  const el = (e: number): string => `select(0.0, ${buf}[b + min(4u * c + ${e}u, ${dim} - 1u)], 4u * c + ${e}u < ${dim})`;
  return `fn ld_${buf}(row: u32, c: u32) -> vec4<f32> { let b = ${off} + row * ${dim}; return vec4<f32>(${[0, 1, 2, 3].map(el).join(', ')}); }`;
}
/** fn st_<buf>(row, c, v): stores chunk c of a row of a [rows, dim] buffer starting at `off`. */
function storer(buf: string, dim: string, off: string, vec4: boolean): string {
  if (vec4) return `fn st_${buf}(row: u32, c: u32, v: vec4<f32>) { ${buf}[${off} + row * (${dim} / 4u) + c] = v; }`;
  const body = [0, 1, 2, 3].map((e) => `if (4u * c + ${e}u < ${dim}) { ${buf}[b + 4u * c + ${e}u] = v[${e}]; }`).join(' ');
  return `fn st_${buf}(row: u32, c: u32, v: vec4<f32>) { let b = ${off} + row * ${dim}; ${body} }`;
}

/** Additive mask element for (query i, key j) of head bh (chunk-local; bh0 makes it global). */
const MASK_AT = (i: string, j: string): string =>
  `msk[u.moff + ((bh + u.bh0) / u.heads) * u.ms0 + ((bh + u.bh0) % u.heads) * u.ms1 + ${i} * u.ms2 + ${j} * u.ms3]`;

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

export function forwardWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['o', true, true], ['lse', true, false]);
  return `${header(p, binds, [loader('q', 'u.d', 'u.qoff', p.vec4), loader('k', 'u.d', 'u.koff', p.vec4), loader('v', 'u.dv', 'u.voff', p.vec4), storer('o', 'u.dv', 'u.so1', p.vec4)])}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  // keys visible to any row of this workgroup (uniform: every invocation streams the same rows);
  // q0: the first query of a chunk, for causal masks and additive masks
  ${p.mask === 'causal' ? `let kvEnd = min(u.lk, u.q0 + min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  var q: array<vec4<f32>, ${p.c}>;
  var acc: array<vec4<f32>, ${p.v}>;
  for (var c = 0u; c < u.nc; c++) { q[c] = ld_q(bh * u.lq + iq, c) * u.scale; }
  for (var c = 0u; c < u.nv; c++) { acc[c] = vec4<f32>(0.0); }
  var m = ${NEG};
  var l = 0.0;
  for (var r = 0u; r < kvEnd; r++) {
    ${p.mask === 'causal' ? 'if (r > i + u.q0) { continue; }' : ''}
    let kr = bh * u.lk + r;
    var sc = 0.0;
    for (var c = 0u; c < u.nc; c++) { sc += dot(q[c], ld_k(kr, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('(iq + u.q0)', 'r')};` : ''}
    if (sc > m) {
      // new running max: rescale what was accumulated so far
      let corr = exp(m - sc);
      l *= corr;
      for (var c = 0u; c < u.nv; c++) { acc[c] *= corr; }
      m = sc;
    }
    let pr = exp(sc - m);
    l += pr;
    for (var c = 0u; c < u.nv; c++) { acc[c] += pr * ld_v(kr, c); }
  }
  if (i < u.lq) {
    let inv = 1.0 / l;
    for (var c = 0u; c < u.nv; c++) { st_o(bh * u.lq + i, c, acc[c] * inv); }
    lse[u.so2 + bh * u.lq + i] = m + log(l);
  }
}`;
}

/** dQ pass: one invocation per query row; also writes Di = dO_i · O_i for the dK/dV pass. */
export function dqWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['o', false, true], ['lse', false, false], ['g', false, true]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dq', true, true], ['dvec', true, false]);
  const fns = [loader('q', 'u.d', 'u.qoff', p.vec4), loader('k', 'u.d', 'u.koff', p.vec4), loader('v', 'u.dv', 'u.voff', p.vec4), loader('o', 'u.dv', 'u.ooff', p.vec4), loader('g', 'u.dv', 'u.goff', p.vec4), storer('dq', 'u.d', 'u.so1', p.vec4)];
  return `${header(p, binds, fns)}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  ${p.mask === 'causal' ? `let kvEnd = min(u.lk, min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  let qr = bh * u.lq + iq;
  var q: array<vec4<f32>, ${p.c}>;
  var g: array<vec4<f32>, ${p.v}>;
  var dq_acc: array<vec4<f32>, ${p.c}>;
  for (var c = 0u; c < u.nc; c++) { q[c] = ld_q(qr, c) * u.scale; dq_acc[c] = vec4<f32>(0.0); }
  var di = 0.0;
  for (var c = 0u; c < u.nv; c++) { g[c] = ld_g(qr, c); di += dot(g[c], ld_o(qr, c)); }
  let li = lse[u.loff + qr];
  for (var r = 0u; r < kvEnd; r++) {
    ${p.mask === 'causal' ? 'if (r > i) { continue; }' : ''}
    let kr = bh * u.lk + r;
    var sc = 0.0;
    for (var c = 0u; c < u.nc; c++) { sc += dot(q[c], ld_k(kr, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('iq', 'r')};` : ''}
    let pr = exp(sc - li);
    var dp = 0.0;
    for (var c = 0u; c < u.nv; c++) { dp += dot(g[c], ld_v(kr, c)); }
    let ds = pr * (dp - di);
    for (var c = 0u; c < u.nc; c++) { dq_acc[c] += ds * ld_k(kr, c); }
  }
  if (i < u.lq) {
    for (var c = 0u; c < u.nc; c++) { st_dq(bh * u.lq + i, c, dq_acc[c] * u.scale); }
    dvec[u.so2 + bh * u.lq + i] = di;
  }
}`;
}

/** dK/dV pass: one invocation per key row, streaming the query rows that see it. */
export function dkvWgsl(p: Plan): string {
  const binds: [string, boolean, boolean][] = [['q', false, true], ['k', false, true], ['v', false, true], ['lse', false, false], ['g', false, true], ['dvec', false, false]];
  if (p.mask === 'add') binds.push(['msk', false, false]);
  binds.push(['dk', true, true], ['dvo', true, true]);
  const fns = [loader('q', 'u.d', 'u.qoff', p.vec4), loader('k', 'u.d', 'u.koff', p.vec4), loader('v', 'u.dv', 'u.voff', p.vec4), loader('g', 'u.dv', 'u.goff', p.vec4), storer('dk', 'u.d', 'u.so1', p.vec4), storer('dvo', 'u.dv', 'u.so2', p.vec4)];
  return `${header(p, binds, fns)}
  let j = wid.x * ${WG}u + lid.x;
  let jk = min(j, u.lk - 1u);
  // causal: only queries i >= j see key j; start at the workgroup's first key (uniform)
  ${p.mask === 'causal' ? `let iStart = wid.x * ${WG}u;` : 'let iStart = 0u;'}
  let kr = bh * u.lk + jk;
  var kk: array<vec4<f32>, ${p.c}>;
  var vv: array<vec4<f32>, ${p.v}>;
  var dk_acc: array<vec4<f32>, ${p.c}>;
  var dv_acc: array<vec4<f32>, ${p.v}>;
  for (var c = 0u; c < u.nc; c++) { kk[c] = ld_k(kr, c) * u.scale; dk_acc[c] = vec4<f32>(0.0); }
  for (var c = 0u; c < u.nv; c++) { vv[c] = ld_v(kr, c); dv_acc[c] = vec4<f32>(0.0); }
  for (var r = iStart; r < u.lq; r++) {
    ${p.mask === 'causal' ? 'if (jk > r) { continue; }' : ''}
    let qr = bh * u.lq + r;
    var sc = 0.0;
    for (var c = 0u; c < u.nc; c++) { sc += dot(kk[c], ld_q(qr, c)); }
    ${p.mask === 'add' ? `sc += ${MASK_AT('r', 'jk')};` : ''}
    let pr = exp(sc - lse[u.loff + qr]);
    var dp = 0.0;
    for (var c = 0u; c < u.nv; c++) { let gc = ld_g(qr, c); dp += dot(vv[c], gc); dv_acc[c] += pr * gc; }
    let ds = pr * (dp - dvec[u.doff + qr]);
    for (var c = 0u; c < u.nc; c++) { dk_acc[c] += ds * ld_q(qr, c); }
  }
  if (j < u.lk) {
    for (var c = 0u; c < u.nc; c++) { st_dk(bh * u.lk + j, c, dk_acc[c] * u.scale); }
    for (var c = 0u; c < u.nv; c++) { st_dvo(bh * u.lk + j, c, dv_acc[c]); }
  }
}`;
}

function plan(a: AttentionAttrs, rowViews: View[]): Plan {
  const vec4 = a.d % 4 === 0 && a.dv % 4 === 0 && rowViews.every((v) => v.offset % 4 === 0);
  return { c: chunks(a.d), v: chunks(a.dv), vec4, mask: a.mask };
}
const planKey = (p: Plan): string => `${p.c}:${p.v}:${p.vec4}:${p.mask}`;

function checkGrid(a: AttentionAttrs, rows: number): [number, number] {
  const x = Math.ceil(rows / WG);
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
  const p = plan(a, [q, k, v]);
  const key = `attn_fwd:${planKey(p)}`;
  const bufs = [bufferOf(q), bufferOf(k), bufferOf(v), out.buffer, lse.buffer];
  const chunks = chunkPlan(be, a, bufs, true);
  if (!chunks) {
    be.rt.dispatch({
      name: 'attention_forward',
      key,
      wgsl: () => forwardWgsl(p),
      buffers: [bufferOf(q), bufferOf(k), bufferOf(v), ...(m ? [bufferOf(m)] : []), out.buffer, lse.buffer],
      uniforms: uniforms(a, p, { q: q.offset, k: k.offset, v: v.offset, m: m?.offset ?? 0 }),
      workgroups: checkGrid(a, a.lq),
    });
    return [out, lse];
  }
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
      uniforms: uniforms(a, p, { q: bq.offset, k: bk.offset, v: bv.offset, m: m?.offset ?? 0, s1: bo.offset, s2: bl.offset }, ch),
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
  const p = plan(a, [q, k, v, o, g]);
  const dvec = be.alloc('float32', a.bh * a.lq);
  const mb = m ? [bufferOf(m)] : [];
  const [Q, K, V, O, L, G] = [q, k, v, o, lse, g].map(bufferOf) as [GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer, GPUBuffer];
  const chunks = chunkPlan(be, a, [Q, K, V, O, L, G, dq.buffer, dk.buffer, dv.buffer, dvec.buffer], false) ?? [{ bh: a.bh, lq: a.lq, bh0: 0, q0: 0 }];
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
      name: 'attention_backward_dq',
      key: `attn_dq:${planKey(p)}`,
      wgsl: () => dqWgsl(p),
      buffers: [bq.binding, bk.binding, bv.binding, bo.binding, bl.binding, bg.binding, ...mb, bdq.binding, bdvec.binding],
      uniforms: uniforms(a, p, { ...reads, s1: bdq.offset, s2: bdvec.offset }, ch),
      workgroups: checkGrid({ ...a, bh: ch.bh }, a.lq),
    });
    be.rt.dispatch({
      name: 'attention_backward_dkv',
      key: `attn_dkv:${planKey(p)}`,
      wgsl: () => dkvWgsl(p),
      buffers: [bq.binding, bk.binding, bv.binding, bl.binding, bg.binding, bdvec.binding, ...mb, bdk.binding, bdv.binding],
      uniforms: uniforms(a, p, { ...reads, s1: bdk.offset, s2: bdv.offset, d: bdvec.offset }, ch, true),
      workgroups: checkGrid({ ...a, bh: ch.bh }, a.lk),
    });
  }
  dvec.release();
  return [dq, dk, dv];
};
