// optim kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import type { AdamStepAttrs, SgdStepAttrs, SumSquaresAttrs, ClipScaleAttrs } from './index.js';

/** Elementwise in-place optimizer updates (one dispatch per tensor) and a fused sum of squares. */
const WG = 64;
const INDEX = `let i = gid.x + gid.y * nwg.x * ${WG}u;
  if (i >= u.n) { return; }`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;

/**
 * Multi-tensor apply: each dispatch updates up to `perDispatch` parameters (4 storage buffers each),
 * its invocations spanning all their elements; invocation i finds its tensor by the running ends in the
 * uniform block. One dispatch per parameter cost more in fixed overhead than in arithmetic (304
 * dispatches for the tiny UNet). The update itself is the single-tensor one, in torch's order.
 */
export const adam_step: KernelFn<WebGPUBackend, 'adam_step'> = (be, views, attrs) => {
  const a = attrs;
  const perDispatch = Math.max(1, Math.min(8, Math.floor(be.rt.limits.maxStorageBuffersPerShaderStage / 4)));
  for (let k0 = 0; k0 < a.tensors.length; k0 += perDispatch) {
    const ks: number[] = [];
    for (let k = k0; k < Math.min(k0 + perDispatch, a.tensors.length); k++) if (a.tensors[k]!.n > 0) ks.push(k);
    if (ks.length === 0) continue;
    const c = ks.length;
    const wgsl = (): string => {
      const decl: string[] = [];
      const fields: string[] = [];
      const branches: string[] = [];
      for (let j = 0; j < c; j++) {
        // all four read_write: a gradient may share a GPU buffer with another tensor of the batch
        // (views of one storage), and read-only and writable uses of one buffer may not mix in a dispatch
        for (const [x, b] of [['p', 0], ['g', 1], ['m', 2], ['v', 3]] as const) decl.push(`@group(0) @binding(${4 * j + b}) var<storage, read_write> ${x}${j}: array<f32>;`);
        fields.push(`e${j}: u32, po${j}: u32, go${j}: u32, mo${j}: u32, vo${j}: u32, st${j}: f32, bc${j}: f32`);
        const start = j === 0 ? '0u' : `u.e${j - 1}`;
        branches.push(`if (i < u.e${j}) {
    let l = i - ${start};
    var gr = g${j}[u.go${j} + l] * u.sign;
    var pv = p${j}[u.po${j} + l];
    gr = gr + u.l2 * pv;
    pv = pv * u.decay;
    let mv = m${j}[u.mo${j} + l] + u.w1 * (gr - m${j}[u.mo${j} + l]);
    let vv = v${j}[u.vo${j} + l] * u.b2 + (u.w2 * gr) * gr;
    let denom = sqrt(vv) / u.bc${j} + u.eps;
    m${j}[u.mo${j} + l] = mv;
    v${j}[u.vo${j} + l] = vv;
    p${j}[u.po${j} + l] = pv + (-u.st${j}) * (mv / denom);
    return;
  }`);
      }
      return `
${decl.join('\n')}
struct U { n: u32, w1: f32, b2: f32, w2: f32, eps: f32, decay: f32, l2: f32, sign: f32,
  ${fields.join(',\n  ')} };
@group(0) @binding(${4 * c}) var<uniform> u: U;
${ENTRY} {
  ${INDEX}
  ${branches.join('\n  ')}
}`;
    };
    const uni = new UniformWriter().u32(0).f32(1 - a.beta1, a.beta2, 1 - a.beta2, a.eps, a.decay, a.l2, a.maximize ? -1 : 1);
    const buffers: GPUBuffer[] = [];
    let end = 0;
    for (const k of ks) {
      const t = a.tensors[k]!;
      const [p, g, m, v] = [views[4 * k]!, views[4 * k + 1]!, views[4 * k + 2]!, views[4 * k + 3]!];
      end += t.n;
      uni.u32(end, p.offset, g.offset, m.offset, v.offset).f32(t.stepSize, t.bc2Sqrt);
      buffers.push(bufferOf(p), bufferOf(g), bufferOf(m), bufferOf(v));
    }
    const words = uni.build();
    words[0] = end;
    be.rt.dispatch({ name: 'adam_step', key: `adam_step:${c}`, wgsl, buffers, uniforms: words, workgroups: grid(end, WG) });
  }
};

export const sgd_step: KernelFn<WebGPUBackend, 'sgd_step'> = (be, inputs, attrs) => {
  const a = attrs;
  if (a.n === 0) return;
  const [p, g] = [inputs[0]!, inputs[1]!];
  const b = a.momentum !== 0 ? inputs[2]! : null;
  const wgsl = (): string => `
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
${b ? '@group(0) @binding(2) var<storage, read_write> buf: array<f32>;' : ''}
struct U { n: u32, poff: u32, goff: u32, boff: u32, first: u32, nesterov: u32, pad0: u32, pad1: u32,
  lr: f32, mom: f32, damp: f32, wd: f32, sign: f32 };
@group(0) @binding(${b ? 3 : 2}) var<uniform> u: U;
${ENTRY} {
  ${INDEX}
  var gr = g[u.goff + i] * u.sign;
  let pv = p[u.poff + i];
  gr = gr + u.wd * pv;
  ${
    b
      ? `var bv = gr;
  if (u.first == 0u) { bv = buf[u.boff + i] * u.mom + u.damp * gr; }
  buf[u.boff + i] = bv;
  if (u.nesterov != 0u) { gr = gr + u.mom * bv; } else { gr = bv; }`
      : ''
  }
  p[u.poff + i] = pv + (-u.lr) * gr;
}`;
  const uni = new UniformWriter()
    .u32(a.n, p.offset, g.offset, b?.offset ?? 0, a.first ? 1 : 0, a.nesterov ? 1 : 0, 0, 0)
    .f32(a.lr, a.momentum, 1 - a.dampening, a.weightDecay, a.maximize ? -1 : 1)
    .build();
  be.rt.dispatch({
    name: 'sgd_step', key: `sgd_step:${!!b}`, wgsl,
    buffers: [bufferOf(p), bufferOf(g), ...(b ? [bufferOf(b)] : [])],
    uniforms: uni, workgroups: grid(a.n, WG),
  });
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
