// attention kernels (WebGPU): registered with registerKernel('webgpu', …).
import { registerKernel } from '../../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf } from '../webgpu-backend.js';
import type { AttentionAttrs } from '../../kernel-attrs.js';

/**
 * Flash-attention style kernels without workgroup memory or barriers (lavapipe executes barriers
 * slowly; real GPUs serve the shared rows from cache). Each invocation owns one row — a query row
 * in the forward and the dQ pass, a key row in the dK/dV pass — and streams the other side's rows
 * in blocks of 8. All invocations of a workgroup stream the same rows. With subgroups, lane t of
 * each subgroup loads streamed row t of the block and the others read it by subgroupShuffle
 * (GUIDE §1: per-lane loads are what costs on lavapipe); without, every invocation loads the rows
 * at workgroup-uniform addresses. Head dims are specialised at pipeline creation (register arrays
 * of vec4s, loops over them left to the compiler); sequence lengths and batch travel in uniforms.
 * Memory: O(B·H·L·D), never [Lq, Lk].
 */
const WG = 64;
/** Streamed rows per block: one per lane of an 8-wide subgroup (lavapipe's size). */
const BK = 8;
const NEG = '-3.4028234e38';

const chunks = (d: number): number => Math.ceil(d / 4);
const rep = (n: number, f: (i: number) => string, sep = '\n    '): string => Array.from({ length: n }, (_, i) => f(i)).join(sep);

/** vec4 of elements 4c..4c+3 of the row of `d` floats at `base`, zero past the row's end. */
function ld(buf: string, base: string, c: number, d: number): string {
  const parts = [0, 1, 2, 3].map((e) => (4 * c + e < d ? `${buf}[${base} + ${4 * c + e}u]` : '0.0'));
  return `vec4<f32>(${parts.join(', ')})`;
}
function st(buf: string, base: string, c: number, d: number, val: string): string {
  return [0, 1, 2, 3]
    .filter((e) => 4 * c + e < d)
    .map((e) => `${buf}[${base} + ${4 * c + e}u] = ${val}.${'xyzw'[e]};`)
    .join(' ');
}

const UNIFORMS = `struct U { bh: u32, heads: u32, lq: u32, lk: u32, qoff: u32, koff: u32, voff: u32, moff: u32,
  ms0: u32, ms1: u32, ms2: u32, ms3: u32, ooff: u32, loff: u32, goff: u32, scale: f32 };`;

function uniforms(a: AttentionAttrs, offs: { q: number; k: number; v: number; m: number; o?: number; l?: number; g?: number }): Uint32Array {
  const ms = a.maskStrides ?? [0, 0, 0, 0];
  return new UniformWriter()
    .u32(a.bh, a.heads, a.lq, a.lk, offs.q, offs.k, offs.v, offs.m, ...ms, offs.o ?? 0, offs.l ?? 0, offs.g ?? 0)
    .f32(a.scale)
    .build();
}

/** Additive mask element for (query i, key j) of head bh. */
const MASK_AT = (i: string, j: string): string =>
  `msk[u.moff + (bh / u.heads) * u.ms0 + (bh % u.heads) * u.ms1 + ${i} * u.ms2 + ${j} * u.ms3]`;

/** A row streamed by every invocation: vec4 chunks `${arr}0..` of `n` from `buf` at `base(row)`, and scalars. */
interface Streamed {
  vecs: { arr: string; buf: string; n: number; dim: number; base: (row: string) => string }[];
  scalars: { name: string; expr: (row: string) => string }[];
}

/**
 * Emits the streaming loop over rows [start, end). `body(t, vec, scalar)` handles one row `r${t}`,
 * reading chunk c of the streamed row via vec(arr, c) and a streamed scalar via scalar(name).
 * Blocked (forward, or with subgroups): rows come in blocks of 8 whose bodies are unrolled, t being
 * the row within the block; with subgroups lane t loads row t of the block and the others read it
 * by subgroupBroadcast. Otherwise a flat loop, one row per iteration (t = 0). Chunks are separate
 * variables: lavapipe's compile time explodes with dynamically indexed private arrays, nested
 * row loops and dynamic-lane shuffles, and grows steeply with code size.
 */
function streamLoop(
  sg: boolean, blocked: boolean, start: string, end: string, s: Streamed,
  body: (t: number, vec: (arr: string, c: number) => string, scalar: (name: string) => string) => string,
  blockHead = '', blockEnd = '',
): string {
  if (!sg && !blocked) {
    const vec = (arr: string, c: number): string => { const v = s.vecs.find((x) => x.arr === arr)!; return ld(v.buf, `${arr}b`, c, v.dim); };
    const scalar = (name: string): string => s.scalars.find((x) => x.name === name)!.expr('r0');
    return `for (var r0 = ${start}; r0 < ${end}; r0++) {
    let in0 = true;
    ${s.vecs.map((v) => `let ${v.arr}b = ${v.base('r0')};`).join(' ')}
    ${body(0, vec, scalar)}
  }`;
  }
  const laneLoads = sg
    ? `let rl = min(j0 + lane, ${end} - 1u);
    ${s.vecs.map((v) => `let ${v.arr}b = ${v.base('rl')};\n    ${rep(v.n, (c) => `let ${v.arr}L${c} = ${ld(v.buf, `${v.arr}b`, c, v.dim)};`, ' ')}`).join('\n    ')}
    ${rep(s.scalars.length, (k) => `let ${s.scalars[k]!.name}L = ${s.scalars[k]!.expr('rl')};`)}`
    : '';
  const rows = rep(BK, (t) => {
    const vec = (arr: string, c: number): string => {
      const v = s.vecs.find((x) => x.arr === arr)!;
      return sg ? `subgroupBroadcast(${arr}L${c}, ${t}u)` : ld(v.buf, `${arr}b${t}`, c, v.dim);
    };
    const scalar = (name: string): string => (sg ? `subgroupBroadcast(${name}L, ${t}u)` : s.scalars.find((x) => x.name === name)!.expr(`r${t}`));
    return `let r${t} = min(j0 + ${t}u, ${end} - 1u);
    let in${t} = j0 + ${t}u < ${end};
    ${sg ? '' : s.vecs.map((v) => `let ${v.arr}b${t} = ${v.base(`r${t}`)};`).join(' ')}
    ${body(t, vec, scalar)}`;
  });
  return `for (var j0 = ${start}; j0 < ${end}; j0 += ${BK}u) {
    ${laneLoads}
    ${blockHead}
    ${rows}
    ${blockEnd}
  }`;
}

function header(sg: boolean, names: [string, boolean][]): string {
  return `${sg ? 'enable subgroups;\n' : ''}
${names.map(([n, rw], i) => `@group(0) @binding(${i}) var<storage, ${rw ? 'read_write' : 'read'}> ${n}: array<f32>;`).join('\n')}
${UNIFORMS}
@group(0) @binding(${names.length}) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${sg ? ', @builtin(subgroup_invocation_id) sgl: u32' : ''}) {
  ${sg ? 'let lane = sgl & 7u;' : ''}
  let bh = wid.y;`;
}

const sumDots = (n: number, a: (c: number) => string, b: (c: number) => string): string =>
  Array.from({ length: n }, (_, c) => `dot(${a(c)}, ${b(c)})`).join(' + ');
const declVec = (n: number, name: string, init: (c: number) => string): string => rep(n, (c) => `var ${name}${c} = ${init(c)};`, ' ');

export function forwardWgsl(d: number, dv: number, mask: AttentionAttrs['mask'], sg: boolean): string {
  const C = chunks(d), V = chunks(dv);
  const names: [string, boolean][] = [['q', false], ['k', false], ['v', false]];
  if (mask === 'add') names.push(['msk', false]);
  names.push(['o', true], ['lse', true]);
  const stream: Streamed = {
    vecs: [
      { arr: 'kr', buf: 'k', n: C, dim: d, base: (r) => `u.koff + (bh * u.lk + ${r}) * ${d}u` },
      { arr: 'vr', buf: 'v', n: V, dim: dv, base: (r) => `u.voff + (bh * u.lk + ${r}) * ${dv}u` },
    ],
    scalars: [],
  };
  // Online softmax per block of 8 keys: score the block, rescale once, add the weighted V rows.
  const scoreLoop = streamLoop(
    sg, true, '0u', 'kvEnd', stream,
    (t, vec) => `let ok${t} = in${t}${mask === 'causal' ? ` && r${t} <= i` : ''};
    var s${t} = ${sumDots(C, (c) => `q${c}`, (c) => vec('kr', c))};
    ${mask === 'add' ? `s${t} += ${MASK_AT('iq', `r${t}`)};` : ''}
    s${t} = select(${NEG}, s${t}, ok${t});`,
    '',
    `let mn = ${Array.from({ length: BK }, (_, t) => `s${t}`).reduce((acc, x) => `max(${acc}, ${x})`, 'm')};
    let corr = exp(m - mn);
    l *= corr;
    ${rep(V, (c) => `acc${c} *= corr;`, ' ')}
    m = mn;
    ${rep(BK, (t) => `{
      let p = select(0.0, exp(s${t} - mn), ok${t});
      l += p;
      ${rep(V, (c) => `acc${c} += p * ${sg ? `subgroupBroadcast(vrL${c}, ${t}u)` : ld('v', `vrb${t}`, c, dv)};`, ' ')}
    }`)}`,
  );
  return `${header(sg, names)}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  // keys visible to any row of this workgroup (uniform: all invocations stream the same rows)
  ${mask === 'causal' ? `let kvEnd = min(u.lk, min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  let qb = u.qoff + (bh * u.lq + iq) * ${d}u;
  ${declVec(C, 'q', (c) => `${ld('q', 'qb', c, d)} * u.scale`)}
  ${declVec(V, 'acc', () => 'vec4<f32>(0.0)')}
  var m = ${NEG};
  var l = 0.0;
  ${scoreLoop}
  if (i < u.lq) {
    let inv = 1.0 / l;
    let ob = (bh * u.lq + i) * ${dv}u;
    ${rep(V, (c) => st('o', 'ob', c, dv, `(acc${c} * inv)`), ' ')}
    lse[bh * u.lq + i] = m + log(l);
  }
}`;
}

/** dQ pass: one invocation per query row; also writes Di = dO_i · O_i for the dK/dV pass. */
export function dqWgsl(d: number, dv: number, mask: AttentionAttrs['mask'], sg: boolean): string {
  const C = chunks(d), V = chunks(dv);
  const names: [string, boolean][] = [['q', false], ['k', false], ['v', false], ['o', false], ['lse', false], ['g', false]];
  if (mask === 'add') names.push(['msk', false]);
  names.push(['dq', true], ['dvec', true]);
  const stream: Streamed = {
    vecs: [
      { arr: 'kr', buf: 'k', n: C, dim: d, base: (r) => `u.koff + (bh * u.lk + ${r}) * ${d}u` },
      { arr: 'vr', buf: 'v', n: V, dim: dv, base: (r) => `u.voff + (bh * u.lk + ${r}) * ${dv}u` },
    ],
    scalars: [],
  };
  const loop = streamLoop(sg, false, '0u', 'kvEnd', stream, (t, vec) => `if (in${t}) {
      ${rep(C, (c) => `let kt${c} = ${vec('kr', c)};`, ' ')}
      var sc = ${sumDots(C, (c) => `q${c}`, (c) => `kt${c}`)};
      ${mask === 'add' ? `sc += ${MASK_AT('iq', `r${t}`)};` : ''}
      let p = select(0.0, exp(sc - li), ${mask === 'causal' ? `r${t} <= i` : 'true'});
      let dp = ${sumDots(V, (c) => `g${c}`, (c) => vec('vr', c))};
      let ds = p * (dp - di);
      ${rep(C, (c) => `dq${c} += ds * kt${c};`, ' ')}
    }`);
  return `${header(sg, names)}
  let i = wid.x * ${WG}u + lid.x;
  let iq = min(i, u.lq - 1u);
  ${mask === 'causal' ? `let kvEnd = min(u.lk, min(wid.x * ${WG}u + ${WG}u, u.lq));` : 'let kvEnd = u.lk;'}
  let qb = u.qoff + (bh * u.lq + iq) * ${d}u;
  let gb = u.goff + (bh * u.lq + iq) * ${dv}u;
  let ob = u.ooff + (bh * u.lq + iq) * ${dv}u;
  ${declVec(C, 'q', (c) => `${ld('q', 'qb', c, d)} * u.scale`)}
  ${declVec(V, 'g', (c) => `${ld('g', 'gb', c, dv)}`)}
  let di = ${sumDots(V, (c) => `g${c}`, (c) => `${ld('o', 'ob', c, dv)}`)};
  let li = lse[u.loff + bh * u.lq + iq];
  ${declVec(C, 'dq', () => 'vec4<f32>(0.0)')}
  ${loop}
  if (i < u.lq) {
    let db = (bh * u.lq + i) * ${d}u;
    ${rep(C, (c) => st('dq', 'db', c, d, `(dq${c} * u.scale)`), ' ')}
    dvec[bh * u.lq + i] = di;
  }
}`;
}

/** dK/dV pass: one invocation per key row, streaming the query rows that see it. */
export function dkvWgsl(d: number, dv: number, mask: AttentionAttrs['mask'], sg: boolean): string {
  const C = chunks(d), V = chunks(dv);
  const names: [string, boolean][] = [['q', false], ['k', false], ['v', false], ['lse', false], ['g', false], ['dvec', false]];
  if (mask === 'add') names.push(['msk', false]);
  names.push(['dk', true], ['dvo', true]);
  const stream: Streamed = {
    vecs: [
      { arr: 'qr', buf: 'q', n: C, dim: d, base: (r) => `u.qoff + (bh * u.lq + ${r}) * ${d}u` },
      { arr: 'gr', buf: 'g', n: V, dim: dv, base: (r) => `u.goff + (bh * u.lq + ${r}) * ${dv}u` },
    ],
    scalars: [
      { name: 'lr', expr: (r) => `lse[u.loff + bh * u.lq + ${r}]` },
      { name: 'dr', expr: (r) => `dvec[bh * u.lq + ${r}]` },
    ],
  };
  const loop = streamLoop(sg, false, 'iStart', 'u.lq', stream, (t, vec, scalar) => `if (in${t}) {
      ${rep(C, (c) => `let qt${c} = ${vec('qr', c)};`, ' ')}
      ${rep(V, (c) => `let gt${c} = ${vec('gr', c)};`, ' ')}
      var sc = ${sumDots(C, (c) => `kk${c}`, (c) => `qt${c}`)};
      ${mask === 'add' ? `sc += ${MASK_AT(`r${t}`, 'jk')};` : ''}
      let p = select(0.0, exp(sc - ${scalar('lr')}), ${mask === 'causal' ? `jk <= r${t}` : 'true'});
      let dp = ${sumDots(V, (c) => `vv${c}`, (c) => `gt${c}`)};
      let ds = p * (dp - ${scalar('dr')});
      ${rep(V, (c) => `dva${c} += p * gt${c};`, ' ')}
      ${rep(C, (c) => `dka${c} += ds * qt${c};`, ' ')}
    }`);
  return `${header(sg, names)}
  let j = wid.x * ${WG}u + lid.x;
  let jk = min(j, u.lk - 1u);
  // causal: only queries i >= j see key j; start at the workgroup's first key (uniform)
  ${mask === 'causal' ? `let iStart = wid.x * ${WG}u;` : 'let iStart = 0u;'}
  let kb = u.koff + (bh * u.lk + jk) * ${d}u;
  let vb = u.voff + (bh * u.lk + jk) * ${dv}u;
  ${declVec(C, 'kk', (c) => `${ld('k', 'kb', c, d)} * u.scale`)}
  ${declVec(V, 'vv', (c) => `${ld('v', 'vb', c, dv)}`)}
  ${declVec(C, 'dka', () => 'vec4<f32>(0.0)')}
  ${declVec(V, 'dva', () => 'vec4<f32>(0.0)')}
  ${loop}
  if (j < u.lk) {
    let kb2 = (bh * u.lk + j) * ${d}u;
    let vb2 = (bh * u.lk + j) * ${dv}u;
    ${rep(C, (c) => st('dk', 'kb2', c, d, `(dka${c} * u.scale)`), ' ')}
    ${rep(V, (c) => st('dvo', 'vb2', c, dv, `(dva${c})`), ' ')}
  }
}`;
}

/** Subgroup sharing needs 8-lane-or-wider subgroups; FOLIAR_ATTN_SUBGROUPS=0 forces the plain variant (tests). */
function useSubgroups(be: WebGPUBackend): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.FOLIAR_ATTN_SUBGROUPS;
  return be.rt.subgroups && env !== '0';
}

function checkGrid(a: AttentionAttrs, rows: number): [number, number] {
  const x = Math.ceil(rows / WG);
  if (a.bh > 65535 || x > 65535) throw new RangeError(`attention: ${a.bh} heads x ${rows} rows exceeds the dispatch grid (65535 per dimension)`);
  return [x, a.bh];
}

registerKernel<WebGPUBackend>('webgpu', 'attention_forward', (be, inputs, attrs) => {
  const a = attrs as unknown as AttentionAttrs;
  const out = be.alloc('float32', a.bh * a.lq * a.dv);
  const lse = be.alloc('float32', a.bh * a.lq);
  if (a.bh * a.lq === 0 || a.dv === 0) return [out, lse];
  if (a.lk === 0) throw new RangeError('attention: no keys (Lk = 0)');
  const [q, k, v] = [inputs[0]!, inputs[1]!, inputs[2]!];
  const m = a.mask === 'add' ? inputs[3]! : null;
  const sg = useSubgroups(be);
  const bufs = [bufferOf(q), bufferOf(k), bufferOf(v)];
  if (m) bufs.push(bufferOf(m));
  bufs.push(out.buffer, lse.buffer);
  be.rt.dispatch({
    name: 'attention_forward',
    key: `attn_fwd:${a.d}:${a.dv}:${a.mask}:${sg}`,
    wgsl: () => forwardWgsl(a.d, a.dv, a.mask, sg),
    buffers: bufs,
    uniforms: uniforms(a, { q: q.offset, k: k.offset, v: v.offset, m: m?.offset ?? 0 }),
    workgroups: checkGrid(a, a.lq),
  });
  return [out, lse];
});

registerKernel<WebGPUBackend>('webgpu', 'attention_backward', (be, inputs, attrs) => {
  const a = attrs as unknown as AttentionAttrs;
  const [q, k, v, o, lse, g] = [inputs[0]!, inputs[1]!, inputs[2]!, inputs[3]!, inputs[4]!, inputs[5]!];
  const m = a.mask === 'add' ? inputs[6]! : null;
  const sg = useSubgroups(be);
  const dq = be.alloc('float32', a.bh * a.lq * a.d);
  const dk = be.alloc('float32', a.bh * a.lk * a.d);
  const dv = be.alloc('float32', a.bh * a.lk * a.dv);
  const zero = (s: typeof dq, n: number): void => {
    if (n > 0) be.run('elementwise', [], { op: 'fill', params: [0], shape: [n], out: { storage: s, shape: [n], strides: [1], offset: 0, dtype: 'float32' } });
  };
  if (a.bh === 0 || a.lk === 0 || a.lq === 0) {
    zero(dq, a.bh * a.lq * a.d);
    zero(dk, a.bh * a.lk * a.d);
    zero(dv, a.bh * a.lk * a.dv);
    return [dq, dk, dv];
  }
  const dvec = be.alloc('float32', a.bh * a.lq);
  const offs = { q: q.offset, k: k.offset, v: v.offset, m: m?.offset ?? 0, o: o.offset, l: lse.offset, g: g.offset };
  const uni = uniforms(a, offs);
  const mb = m ? [bufferOf(m)] : [];
  be.rt.dispatch({
    name: 'attention_backward_dq',
    key: `attn_dq:${a.d}:${a.dv}:${a.mask}:${sg}`,
    wgsl: () => dqWgsl(a.d, a.dv, a.mask, sg),
    buffers: [bufferOf(q), bufferOf(k), bufferOf(v), bufferOf(o), bufferOf(lse), bufferOf(g), ...mb, dq.buffer, dvec.buffer],
    uniforms: uni,
    workgroups: checkGrid(a, a.lq),
  });
  be.rt.dispatch({
    name: 'attention_backward_dkv',
    key: `attn_dkv:${a.d}:${a.dv}:${a.mask}:${sg}`,
    wgsl: () => dkvWgsl(a.d, a.dv, a.mask, sg),
    buffers: [bufferOf(q), bufferOf(k), bufferOf(v), bufferOf(lse), bufferOf(g), dvec.buffer, ...mb, dk.buffer, dv.buffer],
    uniforms: uni,
    workgroups: checkGrid(a, a.lk),
  });
  dvec.release();
  return [dq, dk, dv];
});
