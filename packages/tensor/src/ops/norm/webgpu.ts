// norm kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import { rowSubgroupSize } from '../../backends/webgpu/kernels/row-shape.js';
import { readBinding, f16Key } from '../cast/wgsl.js';
import type { NormLayout, NormForwardAttrs, NormBackwardAttrs, NormAffineGradAttrs, NormActivation } from './index.js';

/**
 * One workgroup per statistic row (or per affine index): each invocation strides over the row,
 * then a reduction; statistics are two-pass in f32. Where the adapter has subgroups of a fixed size
 * the workgroup is one subgroup and reductions are subgroupAdd, with no barrier at all (barriers are
 * what costs on lavapipe: 2-4x faster there); else 64 invocations and a workgroup tree reduction.
 */
interface Shape {
  /** Invocations per workgroup. */
  wg: number;
  /** Reduce with subgroupAdd (the workgroup is one subgroup). */
  sub: boolean;
}

function shapeFor(be: WebGPUBackend): Shape {
  const sg = rowSubgroupSize(be);
  return sg ? { wg: sg, sub: true } : { wg: 64, sub: false };
}

interface Binding {
  name: string;
  type: 'f32' | 'vec2<f32>';
  rw: boolean;
  /** The affine params (w, bias) are read through w_at / bias_at: stored as float16 when set (issue 16). */
  f16?: boolean;
}

function bindings(list: Binding[]): string {
  return list
    .map((b, i) =>
      !b.rw && (b.name === 'w' || b.name === 'bias')
        ? readBinding(i, b.name, !!b.f16)
        : `@group(0) @binding(${i}) var<storage, ${b.rw ? 'read_write' : 'read'}> ${b.name}: array<${b.type}>;`,
    )
    .join('\n');
}

const isH = (v: View | null): boolean => v?.dtype === 'float16';

const LAYOUT_FIELDS = 'rows: u32, count: u32, inner: u32, rowDiv: u32, rsHi: u32, rsLo: u32, outerStride: u32, affRow: u32, affOuter: u32, affInner: u32';

function layoutWords(w: UniformWriter, L: NormLayout): UniformWriter {
  return w.u32(L.rows, L.count, L.inner, L.rowDiv, L.rowStrideHi, L.rowStrideLo, L.outerStride, L.affRow, L.affOuter, L.affInner);
}

/** Workgroup reduction of a vec2 (uniform control flow required at the call site). */
function reduce(sh: Shape): string {
  if (sh.sub) return `
fn wg_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
  return subgroupAdd(v);
}`;
  const WG = sh.wg;
  return `
var<workgroup> red: array<vec2<f32>, ${WG}>;
fn wg_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
}

const header = (sh: Shape): string => (sh.sub ? 'enable subgroups;\n' : '');

/** g · act'(z), for the backward of a norm with a fused activation (z: the recomputed pre-activation). */
const ACT_GRAD_WGSL: Record<NormActivation, string> = {
  silu: `
fn act_grad(gv: f32, z: f32) -> f32 {
  let s = 1.0 / (1.0 + exp(-z));
  return gv * s * (1.0 + z * (1.0 - s));
}`,
  // PyTorch's threshold_backward: no gradient at z = 0
  relu: `
fn act_grad(gv: f32, z: f32) -> f32 {
  return select(0.0, gv, z > 0.0);
}`,
};
/** The forward's activation, applied to v in place. */
const ACT_WGSL: Record<NormActivation, string> = { silu: 'v = v / (1.0 + exp(-v));', relu: 'v = max(v, 0.0);' };
const keyOf = (sh: Shape): string => `${sh.sub ? 'sg' : 'wg'}${sh.wg}`;

/**
 * Loops over this invocation's elements of the row (j = lid, lid + WG, …), tracking j / inner and
 * j % inner incrementally (integer division per element is slow on lavapipe). Defines `o` (element
 * offset relative to the row base) and `ai` (affine index) for `body`.
 */
function rowLoop(WG: number, body: string): string {
  return `{
    var jo = lid / u.inner; var ji = lid % u.inner;
    let qs = ${WG}u / u.inner; let rs = ${WG}u % u.inner;
    for (var j = lid; j < u.count; j += ${WG}u) {
      let o = base + jo * u.outerStride + ji;
      let ai = abase + jo * u.affOuter + ji * u.affInner;
      ${body}
      ji += rs; jo += qs;
      if (ji >= u.inner) { ji -= u.inner; jo += 1u; }
    }
  }`;
}

const ROW_HEAD = `
  let r = wid.x + wid.y * nwg.x;
  if (r >= u.rows) { return; }
  let lid = lidv.x;
  let base = (r / u.rowDiv) * u.rsHi + (r % u.rowDiv) * u.rsLo;
  let abase = (r % u.rowDiv) * u.affRow;`;

const entry = (sh: Shape): string => `@compute @workgroup_size(${sh.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lidv: vec3<u32>)`;

export const norm_forward: KernelFn<WebGPUBackend, 'norm_forward'> = (be, inputs, attrs) => {
  const a = attrs;
  const y = be.alloc('float32', a.rows * a.count);
  const stats = a.computeStats ? be.alloc('float32', a.rows * 2) : null;
  const out = stats ? [y, stats] : [y];
  if (a.rows * a.count === 0) return out;
  let k = 1;
  const x = inputs[0]!;
  const w = a.hasWeight ? inputs[k++]! : null;
  const b = a.hasBias ? inputs[k++]! : null;
  const sIn = a.computeStats ? null : inputs[k++]!;
  const rm = a.updateRunning ? inputs[k++]! : null;
  const rv = a.updateRunning ? inputs[k++]! : null;
  const binds: Binding[] = [{ name: 'x', type: 'f32', rw: false }];
  const bufs: GPUBuffer[] = [bufferOf(x)];
  const add = (name: string, v: GPUBuffer | null, rw: boolean, f16 = false): void => {
    if (!v) return;
    binds.push({ name, type: 'f32', rw, f16 });
    bufs.push(v);
  };
  const buf = (v: View | null): GPUBuffer | null => (v ? bufferOf(v) : null);
  add('w', buf(w), false, isH(w));
  add('bias', buf(b), false, isH(b));
  add('st', buf(sIn), false);
  add('y', y.buffer, true);
  add('st', stats ? stats.buffer : null, true);
  add('rm', buf(rm), true);
  add('rv', buf(rv), true);
  const sh = shapeFor(be);
  const WG = sh.wg;
  const key = `norm_fwd:${a.hasWeight}:${a.hasBias}:${a.computeStats}:${a.updateRunning}:${a.activation ?? ''}:${keyOf(sh)}${f16Key(isH(w), isH(b))}`;
  const wgsl = (): string => `${header(sh)}
${bindings(binds)}
struct U { ${LAYOUT_FIELDS}, xoff: u32, woff: u32, boff: u32, soff: u32, rmoff: u32, rvoff: u32, eps: f32, momentum: f32 };
@group(0) @binding(${binds.length}) var<uniform> u: U;
${reduce(sh)}
${entry(sh)} {
  ${ROW_HEAD}
  let n = f32(u.count);
  ${
    a.computeStats
      ? `var acc = 0.0;
  ${rowLoop(WG, 'acc += x[u.xoff + o];')}
  let mean0 = wg_sum(vec2<f32>(acc, 0.0), lid).x / n;
  // second pass on centred values; its sum corrects the rounding of the first mean
  var dev = vec2<f32>(0.0);
  ${rowLoop(WG, 'let d = x[u.xoff + o] - mean0; dev += vec2<f32>(d, d * d);')}
  let dv = wg_sum(dev, lid);
  let mean = mean0 + dv.x / n;
  let m2 = max(dv.y - dv.x * dv.x / n, 0.0);
  let rstd = inverseSqrt(m2 / n + u.eps);
  if (lid == 0u) {
    st[2u * r] = mean;
    st[2u * r + 1u] = rstd;
    ${
      a.updateRunning
        ? `rm[u.rmoff + r] = (1.0 - u.momentum) * rm[u.rmoff + r] + u.momentum * mean;
    rv[u.rvoff + r] = (1.0 - u.momentum) * rv[u.rvoff + r] + u.momentum * (m2 / (n - 1.0));`
        : ''
    }
  }`
      : `let mean = st[u.soff + 2u * r];
  let rstd = st[u.soff + 2u * r + 1u];`
  }
  ${rowLoop(WG, `var v = (x[u.xoff + o] - mean) * rstd;
      ${a.hasWeight ? 'v *= w_at(u.woff + ai);' : ''}
      ${a.hasBias ? 'v += bias_at(u.boff + ai);' : ''}
      ${a.activation ? ACT_WGSL[a.activation] : ''}
      y[o] = v;`)}
}`;
  const uni = layoutWords(new UniformWriter(), a)
    .u32(x.offset, w?.offset ?? 0, b?.offset ?? 0, sIn?.offset ?? 0, rm?.offset ?? 0, rv?.offset ?? 0)
    .f32(a.eps, a.momentum)
    .build();
  be.rt.dispatch({ name: 'norm_forward', key, wgsl, buffers: bufs, uniforms: uni, workgroups: grid(a.rows * WG, WG) });
  return out;
};

export const norm_backward: KernelFn<WebGPUBackend, 'norm_backward'> = (be, inputs, attrs) => normBackward(be, inputs, attrs, null)[0]!;

/**
 * dx and the affine gradients in one dispatch where the bindings fit the adapter's limit: the
 * first `rows` workgroups run the backward rows, the next `size` the affine indices (two independent
 * jobs that read the same x, g and stats; one dispatch instead of two). Else the two kernels.
 */
export const norm_backward_affine: KernelFn<WebGPUBackend, 'norm_backward_affine'> = (be, inputs, attrs) => {
  const a = attrs;
  const act = !!a.activation;
  const storage = 3 + (a.hasWeight ? 1 : 0) + (act && a.hasBias ? 1 : 0) + (a.accumulate ? 1 : 0) + 3;
  if (storage <= be.rt.limits.maxStorageBuffersPerShaderStage && a.rows * a.count > 0 && a.affine.size > 0) return normBackward(be, inputs, a, a.affine);
  const dx = normBackward(be, inputs, a, null)[0]!;
  const aff = [inputs[0]!, inputs[1]!, inputs[2]!, ...(act && a.hasWeight ? [inputs[3]!] : []), ...(act && a.hasBias ? [inputs[a.hasWeight ? 4 : 3]!] : [])];
  return [dx, ...(norm_affine_grad(be, aff, a.affine) as GpuStorage[])];
};

function normBackward(be: WebGPUBackend, inputs: readonly View[], attrs: NormBackwardAttrs, affine: NormAffineGradAttrs | null): GpuStorage[] {
  const a = attrs;
  const dx = be.alloc('float32', a.rows * a.count);
  const dw = affine ? be.alloc('float32', affine.size) : null;
  const db = affine ? be.alloc('float32', affine.size) : null;
  const outs = [dx, ...(dw && db ? [dw, db] : [])];
  if (a.rows * a.count === 0) return outs;
  const [x, g, st] = [inputs[0]!, inputs[1]!, inputs[2]!];
  const w = a.hasWeight ? inputs[3]! : null;
  const act = !!a.activation;
  const b = act && a.hasBias ? inputs[a.hasWeight ? 4 : 3]! : null;
  const binds: Binding[] = [
    { name: 'x', type: 'f32', rw: false },
    { name: 'g', type: 'f32', rw: false },
    { name: 'st', type: 'f32', rw: false },
  ];
  const bufs = [bufferOf(x), bufferOf(g), bufferOf(st)];
  if (w) {
    binds.push({ name: 'w', type: 'f32', rw: false, f16: isH(w) });
    bufs.push(bufferOf(w));
  }
  if (b) {
    binds.push({ name: 'bias', type: 'f32', rw: false, f16: isH(b) });
    bufs.push(bufferOf(b));
  }
  const acc = a.accumulate ? inputs[inputs.length - 1]! : null;
  if (acc) {
    binds.push({ name: 'gacc', type: 'f32', rw: false });
    bufs.push(bufferOf(acc));
  }
  binds.push({ name: 'dx', type: 'f32', rw: true });
  bufs.push(dx.buffer);
  if (dw && db) {
    binds.push({ name: 'dw', type: 'f32', rw: true }, { name: 'db', type: 'f32', rw: true });
    bufs.push(dw.buffer, db.buffer);
  }
  const wv = w ? 'w_at(u.woff + ai)' : '1.0';
  // with a fused activation, g is first taken through it at the recomputed pre-activation
  const gEff = act ? `act_grad(g[u.goff + o], (x[u.xoff + o] - mean) * rstd * ${wv}${b ? ' + bias_at(u.boff + ai)' : ''})` : 'g[u.goff + o]';
  const dxhat = `(${gEff})${w ? ' * w_at(u.woff + ai)' : ''}`;
  const sh = shapeFor(be);
  const WG = sh.wg;
  const wgsl = (): string => `${header(sh)}
${bindings(binds)}
struct U { ${LAYOUT_FIELDS}, xoff: u32, goff: u32, soff: u32, woff: u32, boff: u32, accoff: u32${affine ? `, ${AFFINE_FIELDS}` : ''} };
@group(0) @binding(${binds.length}) var<uniform> u: U;
${reduce(sh)}
${a.activation ? ACT_GRAD_WGSL[a.activation] : ''}
${entry(sh)} {
  ${affine ? `// workgroups past the rows compute the affine gradients
  if (wid.x + wid.y * nwg.x >= u.rows) {
    ${affineBody(WG, act, !!w, !!b, 'wid.x + wid.y * nwg.x - u.rows')}
    return;
  }` : ''}
  ${ROW_HEAD}
  let mean = st[u.soff + 2u * r];
  let rstd = st[u.soff + 2u * r + 1u];
  ${
    a.constStats
      ? 'let m1 = 0.0; let m2 = 0.0;'
      : `var acc = vec2<f32>(0.0);
  ${rowLoop(WG, `let dh = ${dxhat}; acc += vec2<f32>(dh, dh * (x[u.xoff + o] - mean) * rstd);`)}
  let ms = wg_sum(acc, lid) / f32(u.count);
  let m1 = ms.x; let m2 = ms.y;`
  }
  ${rowLoop(WG, `let xh = (x[u.xoff + o] - mean) * rstd;
      dx[o] = rstd * (${dxhat} - m1 - xh * m2)${acc ? ' + gacc[u.accoff + o]' : ''};`)}
}`;
  let uw = layoutWords(new UniformWriter(), a).u32(x.offset, g.offset, st.offset, w?.offset ?? 0, b?.offset ?? 0, acc?.offset ?? 0);
  if (affine) uw = affineWords(uw, affine);
  be.rt.dispatch({
    name: affine ? 'norm_backward_affine' : 'norm_backward',
    key: `norm_bwd:${a.hasWeight}:${a.constStats}:${act ? `${a.activation}:${!!b}` : ''}:${!!acc}:${affine ? 'affine:' : ''}${keyOf(sh)}${f16Key(isH(w), isH(b))}`,
    wgsl,
    buffers: bufs,
    uniforms: uw.build(),
    workgroups: grid((a.rows + (affine?.size ?? 0)) * WG, WG),
  });
  return outs;
}

const AFFINE_FIELDS = 'aSize: u32, aOuter: u32, aInner: u32, aPStride: u32, aAStride: u32, aRowP: u32, aDiv: u32';

function affineWords(w: UniformWriter, a: NormAffineGradAttrs): UniformWriter {
  return w.u32(a.size, a.outer, a.inner, a.pStride, a.aStride, a.rowP, a.aDiv);
}

/**
 * One affine index's Σ g·xhat and Σ g over its elements (dw[a], db[a]); `aExpr` is the index. With a
 * fused activation, g goes through its derivative at the recomputed pre-activation xhat · w + b. Reads
 * x, g, st (and w, bias) at u.xoff … and the AFFINE_FIELDS; writes dw, db.
 */
function affineBody(WG: number, act: boolean, hasW: boolean, hasB: boolean, aExpr: string): string {
  const gv = act ? `act_grad(g[u.goff + o], xh${hasW ? ' * w_at(u.woff + a)' : ''}${hasB ? ' + bias_at(u.boff + a)' : ''})` : 'g[u.goff + o]';
  return `let a = ${aExpr};
  if (a >= u.aSize) { return; }
  let lid = lidv.x;
  let count = u.aOuter * u.aInner;
  let base = a * u.aAStride;
  let rbase = a / u.aDiv;
  var acc = vec2<f32>(0.0);
  var p = lid / u.aInner; var s = lid % u.aInner;
  let qs = ${WG}u / u.aInner; let rs = ${WG}u % u.aInner;
  for (var j = lid; j < count; j += ${WG}u) {
    let o = base + p * u.aPStride + s;
    let row = p * u.aRowP + rbase;
    let xh = (x[u.xoff + o] - st[u.soff + 2u * row]) * st[u.soff + 2u * row + 1u];
    let gv = ${gv};
    acc += vec2<f32>(gv * xh, gv);
    s += rs; p += qs;
    if (s >= u.aInner) { s -= u.aInner; p += 1u; }
  }
  let t = wg_sum(acc, lid);
  if (lid == 0u) { dw[a] = t.x; db[a] = t.y; }`;
}

export const norm_affine_grad: KernelFn<WebGPUBackend, 'norm_affine_grad'> = (be, inputs, attrs) => {
  const a = attrs;
  const [x, g, st] = inputs;
  const act = !!a.activation;
  const w = act && a.hasWeight ? inputs[3]! : null;
  const b = act && a.hasBias ? inputs[a.hasWeight ? 4 : 3]! : null;
  const dw = be.alloc('float32', a.size);
  const db = be.alloc('float32', a.size);
  if (a.size === 0) return [dw, db];
  const sh = shapeFor(be);
  const WG = sh.wg;
  const binds: Binding[] = [
    { name: 'x', type: 'f32', rw: false },
    { name: 'g', type: 'f32', rw: false },
    { name: 'st', type: 'f32', rw: false },
    ...(w ? [{ name: 'w', type: 'f32', rw: false, f16: isH(w) } as const] : []),
    ...(b ? [{ name: 'bias', type: 'f32', rw: false, f16: isH(b) } as const] : []),
    { name: 'dw', type: 'f32', rw: true },
    { name: 'db', type: 'f32', rw: true },
  ];
  const wgsl = (): string => `${header(sh)}
${bindings(binds)}
struct U { ${AFFINE_FIELDS}, xoff: u32, goff: u32, soff: u32, woff: u32, boff: u32 };
@group(0) @binding(${binds.length}) var<uniform> u: U;
${reduce(sh)}
${a.activation ? ACT_GRAD_WGSL[a.activation] : ''}
${entry(sh)} {
  ${affineBody(WG, act, !!w, !!b, 'wid.x + wid.y * nwg.x')}
}`;
  const uni = affineWords(new UniformWriter(), a).u32(x!.offset, g!.offset, st!.offset, w?.offset ?? 0, b?.offset ?? 0).build();
  be.rt.dispatch({
    name: 'norm_affine_grad',
    key: `norm_affine_grad:${act ? `${a.activation}:${!!w}:${!!b}` : ''}:${keyOf(sh)}${f16Key(isH(w), isH(b))}`,
    wgsl,
    buffers: [bufferOf(x!), bufferOf(g!), bufferOf(st!), ...(w ? [bufferOf(w)] : []), ...(b ? [bufferOf(b)] : []), dw.buffer, db.buffer],
    uniforms: uni,
    workgroups: grid(a.size * WG, WG),
  });
  return [dw, db];
};
