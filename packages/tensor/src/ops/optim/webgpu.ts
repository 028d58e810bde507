// optim kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import type { AdamStepAttrs, SgdStepAttrs, SumSquaresAttrs, ClipScaleAttrs } from './index.js';

/** Multi-tensor in-place optimizer updates and a fused sum of squares. */
const WG = 64;
const INDEX = `let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.n) { return; }`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;

/** At most this many tensors per dispatch (one branch each in the shader). */
const MAX_TENSORS = 24;

interface Batch {
  buffers: GPUBuffer[];
  /** Per tensor of the dispatch: its index k and the binding of each of its views. */
  items: { k: number; b: number[] }[];
}

/**
 * Multi-tensor apply: consecutive non-empty tensors go in one dispatch while the distinct GPU buffers
 * they use fit the adapter's storage-buffer limit. Views of one buffer (a ParamArena holding the
 * parameters and their state) share one binding, so with packed parameters a dispatch takes one
 * gradient binding per tensor plus the arena's: ~15 tensors on a 16-buffer adapter, 4 without.
 */
function batches(be: WebGPUBackend, views: readonly View[], per: number, ns: readonly number[]): Batch[] {
  const limit = Math.max(per, be.rt.limits.maxStorageBuffersPerShaderStage);
  const out: Batch[] = [];
  let cur: Batch = { buffers: [], items: [] };
  for (let k = 0; k < ns.length; k++) {
    if (ns[k] === 0) continue;
    const bufs = Array.from({ length: per }, (_, j) => bufferOf(views[per * k + j]!));
    const fresh = new Set(bufs.filter((x) => !cur.buffers.includes(x))).size;
    if (cur.items.length > 0 && (cur.items.length >= MAX_TENSORS || cur.buffers.length + fresh > limit)) {
      out.push(cur);
      cur = { buffers: [], items: [] };
    }
    const b = bufs.map((x) => {
      let i = cur.buffers.indexOf(x);
      if (i < 0) i = cur.buffers.push(x) - 1;
      return i;
    });
    cur.items.push({ k, b });
  }
  if (cur.items.length > 0) out.push(cur);
  return out;
}

/** WGSL declarations of a batch's bindings: all read_write (a buffer may be read and written through different views). */
function bindingDecls(n: number, vec = false): string {
  return Array.from({ length: n }, (_, i) => `@group(0) @binding(${i}) var<storage, read_write> s${i}: array<${vec ? 'vec4<f32>' : 'f32'}>;`).join('\n');
}

/** An element (or vec4) of binding `buf` at the uniform offset field `off`, for element `l` of the current tensor. */
type Access = (buf: number, off: string) => string;

/** The batch's tensors are whole vec4s in every view (offsets and sizes multiples of 4): the vec4 form. */
function vecBatch(bt: Batch, views: readonly View[], per: number, ns: readonly number[]): boolean {
  return bt.items.every(({ k }) => ns[k]! % 4 === 0 && views.slice(per * k, per * k + per).every((v) => v.offset % 4 === 0));
}

/** Workgroup size and consecutive elements per invocation of the multi-tensor updates. */
const MT_WG = 256;
const MT_PER = 4;
const MT_CHUNK = MT_WG * MT_PER;

/**
 * The multi-tensor apply shader: each workgroup updates a chunk of one tensor, found from the
 * workgroup index (uniform over the workgroup, so the per-tensor branches cost one scalar test each
 * and no lane runs another tensor's code), and each invocation MT_PER consecutive elements. One
 * element per invocation with a per-element tensor search ran at a sixth of the copy bandwidth on
 * lavapipe (SGD over ResNet18's 11.2M parameters: 79 ms).
 *
 * `fields(j)` declares tensor j's uniform fields besides its element end `ee{j}` and workgroup end
 * `we{j}`; `update(j, at)` is the body for element `l` of tensor j (or the vec4 at `l`, with `vec`),
 * reading and writing its views through `at(binding, offset field)`.
 */
function multiTensorWgsl(nBuffers: number, head: string, count: number, fields: (j: number) => string, update: (j: number, at: Access) => string, vec = false): string {
  // vec: the MT_PER (= 4) elements are one vec4 of every view (whole vec4s: offsets and sizes multiples of 4)
  const at: Access = vec ? (buf, off) => `s${buf}[(${off} + l) / 4u]` : (buf, off) => `s${buf}[${off} + l]`;
  const branches = Array.from({ length: count }, (_, j) => {
    const w0 = j === 0 ? '0u' : `u.we${j - 1}`, e0 = j === 0 ? '0u' : `u.ee${j - 1}`;
    const body = vec
      ? `let l = l0;
    if (l < n) {
      ${update(j, at)}
    }`
      : `for (var d = 0u; d < ${MT_PER}u; d++) {
      let l = l0 + d;
      if (l >= n) { break; }
      ${update(j, at)}
    }`;
    return `if (wgi < u.we${j}) {
    let l0 = (wgi - ${w0}) * ${MT_CHUNK}u + li * ${MT_PER}u;
    let n = u.ee${j} - ${e0};
    ${body}
    return;
  }`;
  });
  return `
${bindingDecls(nBuffers, vec)}
struct U { ${head},
  ${Array.from({ length: count }, (_, j) => `ee${j}: u32, we${j}: u32, ${fields(j)}`).join(',\n  ')} };
@group(0) @binding(${nBuffers}) var<uniform> u: U;
@compute @workgroup_size(${MT_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let wgi = wid.x + wid.y * nwg.x;
  ${branches.join('\n  ')}
}`;
}

/** Running element and workgroup ends of a batch's tensors, in the order of its items. */
function ends(ns: readonly number[]): { e: number; w: number }[] {
  let e = 0, w = 0;
  return ns.map((n) => ({ e: (e += n), w: (w += Math.ceil(n / MT_CHUNK)) }));
}

/**
 * Adam over several tensors per dispatch (multi-tensor apply); the update itself is the
 * single-tensor one, in torch's order. One dispatch per parameter cost more in fixed overhead than
 * in arithmetic (304 dispatches for the tiny UNet; 76 with 4 parameters per dispatch; ~21 with the
 * parameters in an arena).
 */
export const adam_step: KernelFn<WebGPUBackend, 'adam_step'> = (be, views, attrs) => {
  const a = attrs;
  const ns = a.tensors.map((t) => t.n);
  for (const bt of batches(be, views, 4, ns)) {
    const c = bt.items.length;
    const pattern = bt.items.map((it) => it.b.join('.')).join('_');
    const vec = vecBatch(bt, views, 4, ns);
    const wgsl = (): string =>
      multiTensorWgsl(bt.buffers.length, 'w1: f32, b2: f32, w2: f32, eps: f32, decay: f32, l2: f32, sign: f32, pad: f32', c,
        (j) => `po${j}: u32, go${j}: u32, mo${j}: u32, vo${j}: u32, st${j}: f32, bc${j}: f32`,
        (j, at) => {
          const [pb, gb, mb, vb] = bt.items[j]!.b;
          const [P, G, M, V] = [at(pb!, `u.po${j}`), at(gb!, `u.go${j}`), at(mb!, `u.mo${j}`), at(vb!, `u.vo${j}`)];
          return `var gr = ${G} * u.sign;
      var pv = ${P};
      gr = gr + u.l2 * pv;
      pv = pv * u.decay;
      let m0 = ${M};
      let mv = m0 + u.w1 * (gr - m0);
      let vv = ${V} * u.b2 + (u.w2 * gr) * gr;
      let denom = sqrt(vv) / u.bc${j} + u.eps;
      ${M} = mv;
      ${V} = vv;
      ${P} = pv + (-u.st${j}) * (mv / denom);`;
        }, vec);
    const uni = new UniformWriter().f32(1 - a.beta1, a.beta2, 1 - a.beta2, a.eps, a.decay, a.l2, a.maximize ? -1 : 1, 0);
    const en = ends(bt.items.map(({ k }) => a.tensors[k]!.n));
    bt.items.forEach(({ k }, j) => {
      const t = a.tensors[k]!;
      const [p, g, m, v] = [views[4 * k]!, views[4 * k + 1]!, views[4 * k + 2]!, views[4 * k + 3]!];
      uni.u32(en[j]!.e, en[j]!.w, p.offset, g.offset, m.offset, v.offset).f32(t.stepSize, t.bc2Sqrt);
    });
    be.rt.dispatch({ name: 'adam_step', key: `adam_step:${c}:${pattern}${vec ? ':v4' : ''}`, wgsl, buffers: bt.buffers, uniforms: uni.build(), workgroups: grid(en[c - 1]!.w * MT_WG, MT_WG) });
  }
};

/** SGD over several tensors per dispatch, as adam_step. */
export const sgd_step: KernelFn<WebGPUBackend, 'sgd_step'> = (be, inputs, attrs) => {
  const a = attrs;
  const mom = a.momentum !== 0;
  const per = mom ? 3 : 2;
  const ns = a.tensors.map((t) => t.n);
  for (const bt of batches(be, inputs, per, ns)) {
    const c = bt.items.length;
    const pattern = bt.items.map((it) => it.b.join('.')).join('_');
    const vec = vecBatch(bt, inputs, per, ns);
    const wgsl = (): string =>
      multiTensorWgsl(bt.buffers.length, 'nesterov: u32, lr: f32, mom: f32, damp: f32, wd: f32, sign: f32, pad0: u32, pad1: u32', c,
        (j) => `po${j}: u32, go${j}: u32, bo${j}: u32, first${j}: u32`,
        (j, at) => {
          const b = bt.items[j]!.b;
          const [P, G] = [at(b[0]!, `u.po${j}`), at(b[1]!, `u.go${j}`)];
          const B = mom ? at(b[2]!, `u.bo${j}`) : '';
          return `var gr = ${G} * u.sign;
      let pv = ${P};
      gr = gr + u.wd * pv;${
        mom
          ? `
      var bv = gr;
      if (u.first${j} == 0u) { bv = ${B} * u.mom + u.damp * gr; }
      ${B} = bv;
      if (u.nesterov != 0u) { gr = gr + u.mom * bv; } else { gr = bv; }`
          : ''
      }
      ${P} = pv + (-u.lr) * gr;`;
        }, vec);
    const uni = new UniformWriter().u32(a.nesterov ? 1 : 0).f32(a.lr, a.momentum, 1 - a.dampening, a.weightDecay, a.maximize ? -1 : 1).u32(0, 0);
    const en = ends(bt.items.map(({ k }) => a.tensors[k]!.n));
    bt.items.forEach(({ k }, j) => {
      const t = a.tensors[k]!;
      uni.u32(en[j]!.e, en[j]!.w, inputs[per * k]!.offset, inputs[per * k + 1]!.offset, mom ? inputs[per * k + 2]!.offset : 0, t.first ? 1 : 0);
    });
    be.rt.dispatch({ name: 'sgd_step', key: `sgd_step:${mom}:${c}:${pattern}${vec ? ':v4' : ''}`, wgsl, buffers: bt.buffers, uniforms: uni.build(), workgroups: grid(en[c - 1]!.w * MT_WG, MT_WG) });
  }
};

/** One workgroup per part: strided partial sums, then a workgroup tree reduction. */
export const sum_squares: KernelFn<WebGPUBackend, 'sum_squares'> = (be, [x], attrs) => {
  const a = attrs;
  if (a.parts === 0) return;
  const wgsl = (): string => `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
struct U { n: u32, parts: u32, chunk: u32, xoff: u32, ooff: u32 };
@group(0) @binding(2) var<uniform> u: U;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let part = wid.x + wid.y * nwg.x;
  if (part >= u.parts) { return; }
  let end = min((part + 1u) * u.chunk, u.n);
  var s = 0.0;
  for (var i = part * u.chunk + lid.x; i < end; i += ${WG}u) { let e = x[u.xoff + i]; s += e * e; }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = ${WG / 2}u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[u.ooff + part] = red[0]; }
}`;
  const chunk = Math.ceil(a.n / a.parts);
  be.rt.dispatch({
    name: 'sum_squares', key: 'sum_squares', wgsl,
    buffers: [bufferOf(x!), bufferOf(a.out)],
    uniforms: new UniformWriter().u32(a.n, a.parts, chunk, x!.offset, a.out.offset).build(),
    workgroups: grid(a.parts * WG, WG),
  });
};

export const clip_scale: KernelFn<WebGPUBackend, 'clip_scale'> = (be, [g, norm], attrs) => {
  const a = attrs;
  if (a.n === 0) return;
  const wgsl = (): string => `
@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read> nrm: array<f32>;
struct U { n: u32, goff: u32, noff: u32, maxNorm: f32 };
@group(0) @binding(2) var<uniform> u: U;
${ENTRY} {
  ${INDEX}
  let coef = min(u.maxNorm / (nrm[u.noff] + 1e-6), 1.0);
  g[u.goff + i] = g[u.goff + i] * coef;
}`;
  be.rt.dispatch({
    name: 'clip_scale', key: 'clip_scale', wgsl,
    buffers: [bufferOf(g!), bufferOf(norm!)],
    uniforms: new UniformWriter().u32(a.n, g!.offset, norm!.offset).f32(a.maxNorm).build(),
    workgroups: grid(a.n, WG),
  });
};
