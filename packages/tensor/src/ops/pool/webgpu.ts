// pool kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, Storage, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid } from '../../backends/webgpu/webgpu-backend.js';
import type { Pool2dAttrs, AdaptivePool2dAttrs, UpsampleNearestAttrs } from './index.js';

/**
 * One invocation per output element (forward) or per input element (backward, a gather over the
 * windows that cover it, so no atomics). Pooling is memory-bound; these stay simple.
 */
const WG = 64;

const POOL_U = `struct U { planes: u32, h: u32, w: u32, ho: u32, wo: u32, kh: u32, kw: u32, sh: u32, sw: u32, ph: u32, pw: u32, dh: u32, dw: u32,
  incPad: u32, divisor: u32, xoff: u32, ioff: u32, total: u32, ninf: u32 };`;

function poolUniforms(a: Pool2dAttrs, xoff: number, ioff: number, total: number): Uint32Array {
  return new UniformWriter()
    .u32(a.planes, a.h, a.w, a.ho, a.wo, a.kh, a.kw, a.strideH, a.strideW, a.padH, a.padW, a.dilH, a.dilW)
    .u32(a.countIncludePad ? 1 : 0, a.divisorOverride, xoff, ioff, total, 0xff800000)
    .build();
}

const INDEX = `let t = gid.x + gid.y * nwg.x * ${WG}u;
  if (t >= u.total) { return; }`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;

/**
 * NaN test on the bits: WGSL lets compilers assume floats are never NaN, and lavapipe folded the
 * `v != v` this kernel used to false (a NaN in a window was dropped).
 */
const IS_NAN = `
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }`;

/** PyTorch's average divisor for the window starting at (y0, x0). */
const DIVISOR = `
fn divisor(y0: i32, x0: i32) -> f32 {
  if (u.divisor != 0u) { return f32(u.divisor); }
  var y1 = min(y0 + i32(KH), i32(H + PH));
  var x1 = min(x0 + i32(KW), i32(W + PW));
  if (u.incPad != 0u) { return f32((y1 - y0) * (x1 - x0)); }
  y1 = min(y1, i32(H));
  x1 = min(x1, i32(W));
  return f32((y1 - max(y0, 0)) * (x1 - max(x0, 0)));
}`;

/**
 * The window geometry and the plane size as WGSL constants: every division and modulo by them then
 * compiles to multiplies and shifts (on lavapipe a division by a uniform value is scalarised, one
 * per lane: the max-pool backward spent most of its time dividing), and the tap loops unroll. A
 * pipeline per geometry; a model has a handful.
 */
function geometry(a: Pool2dAttrs): string {
  const c = (name: string, v: number) => `const ${name} = ${v}u;`;
  return [c('H', a.h), c('W', a.w), c('HO', a.ho), c('WO', a.wo), c('KH', a.kh), c('KW', a.kw), c('SH', a.strideH), c('SW', a.strideW),
    c('PH', a.padH), c('PW', a.padW), c('DH', a.dilH), c('DW', a.dilW)].join('\n');
}
const geometryKey = (a: Pool2dAttrs): string =>
  [a.h, a.w, a.ho, a.wo, a.kh, a.kw, a.strideH, a.strideW, a.padH, a.padW, a.dilH, a.dilW].join(',');

function forwardWgsl(mode: 'max' | 'avg', a: Pool2dAttrs): string {
  const max = mode === 'max';
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${max ? '@group(0) @binding(2) var<storage, read_write> yi: array<i32>;' : ''}
${POOL_U}
@group(0) @binding(${max ? 3 : 2}) var<uniform> u: U;
${geometry(a)}
${max ? IS_NAN : DIVISOR}
${ENTRY} {
  ${INDEX}
  let ox = t % WO;
  let oy = (t / WO) % HO;
  let p = t / (WO * HO);
  let base = u.xoff + p * H * W;
  let y0 = i32(oy * SH) - i32(PH);
  let x0 = i32(ox * SW) - i32(PW);
  ${
    max
      ? `var best = bitcast<f32>(u.ninf);
  var bi = -1;
  var first = -1;
  for (var r = 0u; r < KH; r++) {
    let iy = y0 + i32(r * DH);
    if (iy < 0 || iy >= i32(H)) { continue; }
    for (var s = 0u; s < KW; s++) {
      let ix = x0 + i32(s * DW);
      if (ix < 0 || ix >= i32(W)) { continue; }
      let i = iy * i32(W) + ix;
      let v = x[base + u32(i)];
      if (first < 0) { first = i; }
      // first maximum wins (strict >); NaN propagates and takes the index, as in PyTorch (which
      // keeps the last NaN of the window)
      if (v > best || is_nan(v)) { best = v; bi = i; }
    }
  }
  y[t] = best;
  yi[t] = select(max(first, 0), bi, bi >= 0);`
      : `var acc = 0.0;
  for (var iy = max(y0, 0); iy < min(y0 + i32(KH), i32(H)); iy++) {
    for (var ix = max(x0, 0); ix < min(x0 + i32(KW), i32(W)); ix++) {
      acc += x[base + u32(iy) * W + u32(ix)];
    }
  }
  y[t] = acc / divisor(y0, x0);`
  }
}`;
}

/**
 * Gather form of the backward: input (iy, ix) receives from the outputs whose windows hold it.
 * Without dilation those are a range of at most ceil(k / stride) outputs per axis (2 x 2 for
 * ResNet's 3x3 stride-2 max pool instead of 9 taps with divisibility tests); the candidates are read
 * at clamped addresses and masked with select, so the lanes never diverge (per-lane loads are what
 * costs on a CPU adapter, branches around them cost more).
 */
function backwardWgsl(mode: 'max' | 'avg', a: Pool2dAttrs): string {
  const max = mode === 'max';
  const add = (o: string, ok: string, oy: string, ox: string) =>
    max
      ? `acc += select(0.0, g[u.xoff + ${o}], ${ok} && gi[u.ioff + ${o}] == me);`
      : `acc += select(0.0, g[u.xoff + ${o}] / divisor(i32(${oy} * SH) - i32(PH), i32(${ox} * SW) - i32(PW)), ${ok});`;
  const body =
    a.dilH === 1 && a.dilW === 1
      ? `let ty = i32(iy + PH);
  let tx = i32(ix + PW);
  let ny = ty - i32(KH) + 1;
  let nx = tx - i32(KW) + 1;
  let oy0 = select(0, (ny + i32(SH) - 1) / i32(SH), ny > 0);
  let ox0 = select(0, (nx + i32(SW) - 1) / i32(SW), nx > 0);
  let oy1 = min(ty / i32(SH), i32(HO) - 1);
  let ox1 = min(tx / i32(SW), i32(WO) - 1);
  for (var cy = 0; cy < ${Math.ceil(a.kh / a.strideH)}; cy++) {
    let oy = oy0 + cy;
    let oky = oy <= oy1;
    let oyc = u32(min(oy, i32(HO) - 1));
    for (var cx = 0; cx < ${Math.ceil(a.kw / a.strideW)}; cx++) {
      let ox = ox0 + cx;
      let ok = oky && ox <= ox1;
      let oxc = u32(min(ox, i32(WO) - 1));
      let o = (p * HO + oyc) * WO + oxc;
      ${add('o', 'ok', 'oyc', 'oxc')}
    }
  }`
      : `for (var r = 0u; r < KH; r++) {
    let ty = i32(iy + PH) - i32(r * DH);
    if (ty < 0 || u32(ty) % SH != 0u) { continue; }
    let oy = u32(ty) / SH;
    if (oy >= HO) { continue; }
    for (var s = 0u; s < KW; s++) {
      let tx = i32(ix + PW) - i32(s * DW);
      if (tx < 0 || u32(tx) % SW != 0u) { continue; }
      let ox = u32(tx) / SW;
      if (ox >= WO) { continue; }
      let o = (p * HO + oy) * WO + ox;
      ${add('o', 'true', 'oy', 'ox')}
    }
  }`;
  return `
@group(0) @binding(0) var<storage, read> g: array<f32>;
${max ? '@group(0) @binding(1) var<storage, read> gi: array<i32>;' : ''}
@group(0) @binding(${max ? 2 : 1}) var<storage, read_write> dx: array<f32>;
${POOL_U}
@group(0) @binding(${max ? 3 : 2}) var<uniform> u: U;
${geometry(a)}
${max ? '' : DIVISOR}
${ENTRY} {
  ${INDEX}
  let ix = t % W;
  let iy = (t / W) % H;
  let p = t / (W * H);
  let me = i32(iy * W + ix);
  var acc = 0.0;
  ${body}
  dx[t] = acc;
}`;
}

export const pool2d: KernelFn<WebGPUBackend, 'pool2d'> = (be, [x], attrs) => {
  const a = attrs;
  const total = a.planes * a.ho * a.wo;
  const y = be.alloc('float32', total);
  const yi = a.mode === 'max' ? be.alloc('int32', total) : null;
  const out = yi ? [y, yi] : [y];
  if (total === 0) return out;
  be.rt.dispatch({
    name: 'pool2d',
    key: `pool2d:${a.mode}:${geometryKey(a)}`,
    wgsl: () => forwardWgsl(a.mode, a),
    buffers: yi ? [bufferOf(x!), y.buffer, yi.buffer] : [bufferOf(x!), y.buffer],
    uniforms: poolUniforms(a, x!.offset, 0, total),
    workgroups: grid(total, WG),
  });
  return out;
};

export const pool2d_backward: KernelFn<WebGPUBackend, 'pool2d_backward'> = (be, inputs, attrs) => {
  const a = attrs;
  const total = a.planes * a.h * a.w;
  const dx = be.alloc('float32', total);
  if (total === 0) return dx;
  const g = inputs[0]!, gi = a.mode === 'max' ? inputs[1]! : null;
  be.rt.dispatch({
    name: 'pool2d_backward',
    key: `pool2d_bwd:${a.mode}:${geometryKey(a)}`,
    wgsl: () => backwardWgsl(a.mode, a),
    buffers: gi ? [bufferOf(g), bufferOf(gi), dx.buffer] : [bufferOf(g), dx.buffer],
    uniforms: poolUniforms(a, g.offset, gi ? gi.offset : 0, total),
    workgroups: grid(total, WG),
  });
  return dx;
};

// ---- adaptive average pooling: windows [floor(o·in/out), ceil((o+1)·in/out)) per axis

const ADA_U = 'struct U { planes: u32, h: u32, w: u32, ho: u32, wo: u32, xoff: u32, total: u32, pad: u32 };';
const ADA_FNS = `
fn lo(o: u32, size: u32, out: u32) -> u32 { return (o * size) / out; }
fn hi(o: u32, size: u32, out: u32) -> u32 { return ((o + 1u) * size + out - 1u) / out; }`;

function adaptiveWgsl(backward: boolean): string {
  const body = backward
    ? `let ix = t % u.w;
  let iy = (t / u.w) % u.h;
  let p = t / (u.w * u.h);
  // outputs whose window holds iy: floor(iy·ho/h) ..= ceil((iy+1)·ho/h) − 1
  var acc = 0.0;
  for (var oy = (iy * u.ho) / u.h; oy < ((iy + 1u) * u.ho + u.h - 1u) / u.h; oy++) {
    let ny = hi(oy, u.h, u.ho) - lo(oy, u.h, u.ho);
    for (var ox = (ix * u.wo) / u.w; ox < ((ix + 1u) * u.wo + u.w - 1u) / u.w; ox++) {
      let nx = hi(ox, u.w, u.wo) - lo(ox, u.w, u.wo);
      acc += x[u.xoff + (p * u.ho + oy) * u.wo + ox] / f32(ny * nx);
    }
  }
  y[t] = acc;`
    : `let ox = t % u.wo;
  let oy = (t / u.wo) % u.ho;
  let p = t / (u.wo * u.ho);
  let y0 = lo(oy, u.h, u.ho); let y1 = hi(oy, u.h, u.ho);
  let x0 = lo(ox, u.w, u.wo); let x1 = hi(ox, u.w, u.wo);
  var acc = 0.0;
  for (var iy = y0; iy < y1; iy++) {
    for (var ix = x0; ix < x1; ix++) { acc += x[u.xoff + (p * u.h + iy) * u.w + ix]; }
  }
  y[t] = acc / f32((y1 - y0) * (x1 - x0));`;
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${ADA_U}
@group(0) @binding(2) var<uniform> u: U;
${ADA_FNS}
${ENTRY} {
  ${INDEX}
  ${body}
}`;
}

/** adaptive_avg_pool2d and its _backward (same attrs and result type): one shader template, two table entries. */
function adaptiveAvgPool2dKernel(backward: boolean): (be: WebGPUBackend, inputs: readonly View[], attrs: AdaptivePool2dAttrs) => Storage {
  return (be, [x], attrs) => {
    const a = attrs;
    const total = a.planes * (backward ? a.h * a.w : a.ho * a.wo);
    const y = be.alloc('float32', total);
    if (total === 0) return y;
    be.rt.dispatch({
      name: backward ? 'adaptive_avg_pool2d_backward' : 'adaptive_avg_pool2d',
      key: `adaptive_avg_pool2d:${backward}`,
      wgsl: () => adaptiveWgsl(backward),
      buffers: [bufferOf(x!), y.buffer],
      uniforms: new UniformWriter().u32(a.planes, a.h, a.w, a.ho, a.wo, x!.offset, total).build(),
      workgroups: grid(total, WG),
    });
    return y;
  };
}
export const adaptive_avg_pool2d: KernelFn<WebGPUBackend, 'adaptive_avg_pool2d'> = adaptiveAvgPool2dKernel(false);
export const adaptive_avg_pool2d_backward: KernelFn<WebGPUBackend, 'adaptive_avg_pool2d_backward'> = adaptiveAvgPool2dKernel(true);

// ---- nearest upsampling: the source rows / columns (and, backward, the output ranges that read each
// input pixel) come from nearestTable, so both directions are gathers: one dispatch each, no atomics

const UP_U = 'struct U { planes: u32, h: u32, w: u32, ho: u32, wo: u32, xoff: u32, toff: u32, total: u32 };';

function upsampleWgsl(backward: boolean): string {
  const body = backward
    ? `let ix = t % u.w;
  let iy = (t / u.w) % u.h;
  let p = t / (u.w * u.h);
  let rs = u.toff + u.ho + u.wo;
  let cs = rs + u.h + 1u;
  let x0 = tb[cs + ix];
  let x1 = tb[cs + ix + 1u];
  var acc = 0.0;
  for (var oy = tb[rs + iy]; oy < tb[rs + iy + 1u]; oy++) {
    let row = u.xoff + (p * u.ho + oy) * u.wo;
    for (var ox = x0; ox < x1; ox++) { acc += x[row + ox]; }
  }
  y[t] = acc;`
    : `let ox = t % u.wo;
  let oy = (t / u.wo) % u.ho;
  let p = t / (u.wo * u.ho);
  y[t] = x[u.xoff + (p * u.h + tb[u.toff + oy]) * u.w + tb[u.toff + u.ho + ox]];`;
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> tb: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${UP_U}
@group(0) @binding(3) var<uniform> u: U;
${ENTRY} {
  ${INDEX}
  ${body}
}`;
}

function upsampleNearestKernel(backward: boolean): (be: WebGPUBackend, inputs: readonly View[], attrs: UpsampleNearestAttrs) => Storage {
  return (be, [x, table], attrs) => {
    const a = attrs;
    const total = a.planes * (backward ? a.h * a.w : a.ho * a.wo);
    const y = be.alloc('float32', total);
    if (total === 0) return y;
    be.rt.dispatch({
      name: backward ? 'upsample_nearest_backward' : 'upsample_nearest',
      key: `upsample_nearest:${backward}`,
      wgsl: () => upsampleWgsl(backward),
      buffers: [bufferOf(x!), bufferOf(table!), y.buffer],
      uniforms: new UniformWriter().u32(a.planes, a.h, a.w, a.ho, a.wo, x!.offset, table!.offset, total).build(),
      workgroups: grid(total, WG),
    });
    return y;
  };
}
export const upsample_nearest: KernelFn<WebGPUBackend, 'upsample_nearest'> = upsampleNearestKernel(false);
export const upsample_nearest_backward: KernelFn<WebGPUBackend, 'upsample_nearest_backward'> = upsampleNearestKernel(true);

