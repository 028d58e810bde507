// norm kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, grid, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import { rowSubgroupSize } from '../../backends/webgpu/kernels/row-shape.js';
import { env } from '../../env.js';
import { readBinding, f16Key } from '../cast/wgsl.js';
import type { NormLayout, NormForwardAttrs, NormBackwardAttrs, NormAffineGradAttrs, NormActivation } from './index.js';

/**
 * One workgroup per statistic row (or per affine index): each invocation strides over the row,
 * then a reduction; statistics are two-pass in f32. Where the adapter has subgroups of a fixed size
 * the workgroup is one subgroup and reductions are subgroupAdd, with no barrier at all (barriers are
 * what costs on lavapipe: 2-4x faster there); else 64 invocations and a workgroup tree reduction.
 *
 * Where the row layout and every operand offset are multiples of 4 floats, the rows are read and
 * written as vec4s (per-lane loads are what costs on lavapipe: 4x fewer of them, 2-4x faster), and
 * many short rows (the tiny UNet's GroupNorm rows of 128-256, LayerNorm rows of 32-64) run one row
 * per lane with no reduction at all: a workgroup per row of 32 elements left 7 of 8 lanes' work to
 * the per-workgroup overhead (bench/results/latest-norm.md). Long rows: the backward reads vec4s
 * per workgroup; the forward too, with its statistics summed in the element loads' order
 * (exactStatsLoop; bench/results/latest-speed-s23.md).
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
  type: 'f32' | 'vec2<f32>' | 'vec4<f32>';
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
/** The same on vec4 rows (act_grad4). */
const ACT_GRAD4_WGSL: Record<NormActivation, string> = {
  silu: `
fn act_grad4(gv: vec4<f32>, z: vec4<f32>) -> vec4<f32> {
  let s = 1.0 / (1.0 + exp(-z));
  return gv * s * (1.0 + z * (1.0 - s));
}`,
  relu: `
fn act_grad4(gv: vec4<f32>, z: vec4<f32>) -> vec4<f32> {
  return select(vec4<f32>(0.0), gv, z > vec4<f32>(0.0));
}`,
};
/** The forward's activation, applied to v (f32, or vec4 in vec mode) in place. */
const actWgsl = (act: NormActivation, m: RowMode): string => (act === 'silu' ? 'v = v / (1.0 + exp(-v));' : `v = max(v, ${zero(m)});`);
const keyOf = (sh: Shape): string => `${sh.sub ? 'sg' : 'wg'}${sh.wg}`;

/**
 * How a kernel's rows map onto invocations and loads. `vec`: elements move as vec4s (every offset
 * and stride of the layout a multiple of 4; `inner` too, so a vec4 never crosses an outer step).
 * `lane`: one row per invocation (no reduction); else one row per workgroup. `aff0`: affInner is 0
 * (GroupNorm, BatchNorm: one affine value per vec4).
 */
interface RowMode {
  vec: boolean;
  lane: boolean;
  aff0: boolean;
  /** The forward's statistics: vec4 rows per workgroup summed in the element loads' order (exactStatsLoop). */
  exact?: boolean;
}

const SCALAR: RowMode = { vec: false, lane: false, aff0: false };

/** Lane mode pays off for many short rows (measured on lavapipe: 2-2.5x at 256 x 256 and 2048 x 32, a loss from 2048 up). */
const LANE_MAX_COUNT = 1024;
const LANE_MIN_ROWS = 128;

/** Which row mapping the norm kernels take: chosen per layout, or forced (tests, A/B benchmarks). */
export type NormRowMapping = 'auto' | 'scalar' | 'workgroup' | 'lane';
const MAPPINGS: readonly NormRowMapping[] = ['auto', 'scalar', 'workgroup', 'lane'];
/** FOLIAR_NORM_ROWS=scalar|workgroup|lane forces a mapping from the start (as setNormRowMapping). */
let forced: NormRowMapping = MAPPINGS.find((m) => m === env('FOLIAR_NORM_ROWS')) ?? 'auto';

/**
 * Forces the norm kernels' row mapping: 'scalar' (one workgroup per row, element loads: the path any
 * layout can take), 'workgroup' or 'lane' (vec4 loads, where the layout is aligned; else scalar), or
 * 'auto' (the measured choice). Pipelines are keyed by the mapping, so switching is safe at any time.
 */
export function setNormRowMapping(m: NormRowMapping): void {
  forced = m;
}

function rowMode(L: NormLayout, offsets: number[], dir: 'forward' | 'backward', sh: Shape): RowMode {
  const m4 = (v: number) => v % 4 === 0;
  const vec = m4(L.inner) && m4(L.outerStride) && m4(L.rowStrideHi) && m4(L.rowStrideLo) && offsets.every(m4);
  if (!vec || forced === 'scalar') return SCALAR;
  if (forced !== 'auto') return { vec, lane: forced === 'lane', aff0: L.affInner === 0 };
  // Short rows take the row-per-lane form. Long rows: the vec4 row-per-workgroup form is correct (it
  // matches the CPU to 1e-7 on every shape, test/tensor/norm.test.ts forces it), but the forward's
  // statistics in its summation order move one pre-activation of the golden ResNet18 case's layer3.1
  // output, 3.6e-6 where the block's values reach 8.9 (4e-7 relative, inside f32 noise), across zero:
  // the ReLU mask flips there and the layer3.1 gradients move 1e-2 off PyTorch's, over the golden
  // tolerance. So the forward keeps the element loads' summation order: element loads here, or vec4
  // loads reordered to it (exactStatsLoop: one subgroup per row, rows in whole steps of 4 · its size).
  const lane = L.rows >= LANE_MIN_ROWS && L.count <= LANE_MAX_COUNT;
  // The backward takes the vec4 row-per-workgroup form by default: its sums only scale the input
  // gradient (no mask is decided from them: a fused activation's mask is recomputed from the saved
  // statistics element by element), so their order moves dx by f32 rounding only
  const rows: RowMode = { vec, lane: false, aff0: L.affInner === 0 };
  if (lane) return { ...rows, lane };
  if (dir === 'backward') return env('FOLIAR_NORM_BWD_VEC') !== '0' ? rows : SCALAR;
  const exact = sh.sub && L.inner % (4 * sh.wg) === 0 && env('FOLIAR_NORM_FWD_EXACT') !== '0';
  return exact ? { ...rows, exact } : SCALAR;
}

const modeKey = (m: RowMode): string => (m.vec ? `:v${m.lane ? 'l' : 'w'}${m.aff0 ? '0' : ''}${m.exact ? 'e' : ''}` : '');

/** The row part's workgroups: one per row, or one per WG rows in lane mode. */
const rowWorkgroups = (m: RowMode, rows: number, WG: number): number => (m.lane ? Math.ceil(rows / WG) : rows);

/**
 * Loops over this invocation's elements of the row (j = lid, lid + WG, …; vec4s at 4·lid, 4·(lid + WG),
 * …; every element in lane mode), tracking j / inner and j % inner incrementally (integer division
 * per element is slow on lavapipe). Defines `o` (element offset relative to the row base) and `ai`
 * (affine index of the first element) for `body`.
 */
function rowLoop(WG: number, body: string, m: RowMode = SCALAR, pre = ''): string {
  if (m.vec) {
    // nested: outer steps, then vec4s of `inner` (lanes striding them in workgroup mode); with one
    // affine value per outer step (aff0) the affine loads in `pre` run once per step, not per vec4
    const start = m.lane ? '0u' : 'lid * 4u';
    const step = m.lane ? 4 : 4 * WG;
    return `{
    let outer = u.count / u.inner;
    for (var jo = 0u; jo < outer; jo++) {
      let ob = base + jo * u.outerStride;
      let ab = abase + jo * u.affOuter;
      ${m.aff0 ? `let ai = ab;
      ${pre}` : ''}
      for (var ji = ${start}; ji < u.inner; ji += ${step}u) {
        let o = ob + ji;
        ${m.aff0 ? '' : `let ai = ab + ji * u.affInner;
        ${pre}`}
        ${body}
      }
    }
  }`;
  }
  // element loads (lane mode is vec4 only)
  const S = WG;
  const start = 'lid';
  return `{
    var jo = ${start} / u.inner; var ji = ${start} % u.inner;
    let qs = ${S}u / u.inner; let rs = ${S}u % u.inner;
    for (var j = ${start}; j < u.count; j += ${S}u) {
      let o = base + jo * u.outerStride + ji;
      let ai = abase + jo * u.affOuter + ji * u.affInner;
      ${pre}
      ${body}
      ji += rs; jo += qs;
      if (ji >= u.inner) { ji -= u.inner; jo += 1u; }
    }
  }`;
}

/**
 * The forward's statistics loops with vec4 loads summed in the element loads' order (auto mode, one
 * subgroup per row, `inner` a multiple of 4·WG): the element form gives lane l the elements l, l + WG,
 * l + 2·WG, … of the row; here the lanes load 4·WG consecutive elements as vec4s and
 * subgroupShuffle hands lane l its 4 of them (element l + r·WG sits in lane (l >> 2) + r·WG/4), so
 * every lane adds the same values in the same order and the statistics are bit-identical to the
 * element form's (a summation order of its own flipped a borderline ReLU in the golden ResNet18 case).
 * The loop bounds do not depend on the lane (subgroupShuffle needs uniform control flow). `body`
 * sees the element as `e`.
 */
function exactStatsLoop(WG: number, body: string): string {
  const take = (r: number) => `{ let e = subgroupShuffle(v4, (lid >> 2u) + ${(r * WG) / 4}u)[lid & 3u]; ${body} }`;
  return `{
    let outer = u.count / u.inner;
    for (var jo = 0u; jo < outer; jo++) {
      let ob = base + jo * u.outerStride;
      for (var c = 0u; c < u.inner; c += ${4 * WG}u) {
        let v4 = x[(u.xoff + ob + c + 4u * lid) / 4u];
        ${[0, 1, 2, 3].map(take).join('\n        ')}
      }
    }
  }`;
}

/** Element (or vec4) `o` of a row operand bound as `name`, at the operand offset `off`. */
const at = (m: RowMode, name: string, off: string, o = 'o'): string => (m.vec ? `${name}[(${off}${off ? ' + ' : ''}${o}) / 4u]` : `${name}[${off}${off ? ' + ' : ''}${o}]`);

/** The affine parameter `fn` (w_at / bias_at) at offset `off` for the current element or vec4. */
function affAt(m: RowMode, fn: string, off: string): string {
  if (!m.vec) return `${fn}(${off} + ai)`;
  if (m.aff0) return `vec4<f32>(${fn}(${off} + ai))`;
  return `vec4<f32>(${fn}(${off} + ai), ${fn}(${off} + ai + u.affInner), ${fn}(${off} + ai + 2u * u.affInner), ${fn}(${off} + ai + 3u * u.affInner))`;
}

/** The zero of a row value, and the sum of a row value's components. */
const zero = (m: RowMode): string => (m.vec ? 'vec4<f32>(0.0)' : '0.0');
const hsum = (m: RowMode, v: string): string => (m.vec ? `dot(${v}, vec4<f32>(1.0))` : v);

/** The sum over the row of a per-invocation vec2: the workgroup's reduction, or the value itself in lane mode. */
const rowSum = (m: RowMode, v: string): string => (m.lane ? v : `wg_sum(${v}, lid)`);

/** The row this invocation works on (`r`, in range: the others return), its base and affine base; `rowIdx` is the row part's workgroup index. */
function rowHead(m: RowMode, WG: number, rowIdx = 'wid.x + wid.y * nwg.x'): string {
  const r = m.lane ? `(${rowIdx}) * ${WG}u + lidv.x` : rowIdx;
  return `
  let r = ${r};
  if (r >= u.rows) { return; }
  let lid = lidv.x;
  let base = (r / u.rowDiv) * u.rsHi + (r % u.rowDiv) * u.rsLo;
  let abase = (r % u.rowDiv) * u.affRow;`;
}

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
  const sh = shapeFor(be);
  const WG = sh.wg;
  // the exact form is for the statistics: with them given, element loads as before
  const m0 = rowMode(a, [x.offset], 'forward', sh);
  const m = m0.exact && !a.computeStats ? SCALAR : m0;
  const exactStats = !!m.exact;
  const T = m.vec ? 'vec4<f32>' : 'f32';
  const binds: Binding[] = [{ name: 'x', type: T, rw: false }];
  const bufs: GPUBuffer[] = [bufferOf(x)];
  const add = (name: string, v: GPUBuffer | null, rw: boolean, f16 = false, type: Binding['type'] = 'f32'): void => {
    if (!v) return;
    binds.push({ name, type, rw, f16 });
    bufs.push(v);
  };
  const buf = (v: View | null): GPUBuffer | null => (v ? bufferOf(v) : null);
  add('w', buf(w), false, isH(w));
  add('bias', buf(b), false, isH(b));
  add('st', buf(sIn), false);
  add('y', y.buffer, true, false, T);
  add('st', stats ? stats.buffer : null, true);
  add('rm', buf(rm), true);
  add('rv', buf(rv), true);
  const key = `norm_fwd:${a.hasWeight}:${a.hasBias}:${a.computeStats}:${a.updateRunning}:${a.activation ?? ''}:${keyOf(sh)}${modeKey(m)}${f16Key(isH(w), isH(b))}`;
  const X = at(m, 'x', 'u.xoff');
  const Z = zero(m);
  const wgsl = (): string => `${header(sh)}
${bindings(binds)}
struct U { ${LAYOUT_FIELDS}, xoff: u32, woff: u32, boff: u32, soff: u32, rmoff: u32, rvoff: u32, eps: f32, momentum: f32 };
@group(0) @binding(${binds.length}) var<uniform> u: U;
${m.lane ? '' : reduce(sh)}
${entry(sh)} {
  ${rowHead(m, WG)}
  let n = f32(u.count);
  ${
    a.computeStats
      ? exactStats
        ? `var acc = 0.0;
  ${exactStatsLoop(WG, 'acc += e;')}
  let mean0 = wg_sum(vec2<f32>(acc, 0.0), lid).x / n;
  var d1 = 0.0; var d2 = 0.0;
  ${exactStatsLoop(WG, 'let d = e - mean0; d1 += d; d2 += d * d;')}
  let dv = wg_sum(vec2<f32>(d1, d2), lid);`
        : `var acc = ${Z};
  ${rowLoop(WG, `acc += ${X};`, m)}
  let mean0 = ${rowSum(m, `vec2<f32>(${hsum(m, 'acc')}, 0.0)`)}.x / n;
  // second pass on centred values; its sum corrects the rounding of the first mean
  var d1 = ${Z}; var d2 = ${Z};
  ${rowLoop(WG, `let d = ${X} - mean0; d1 += d; d2 += d * d;`, m)}
  let dv = ${rowSum(m, `vec2<f32>(${hsum(m, 'd1')}, ${hsum(m, 'd2')})`)};`
        : ''}${a.computeStats ? `
  let mean = mean0 + dv.x / n;
  let m2 = max(dv.y - dv.x * dv.x / n, 0.0);
  let rstd = inverseSqrt(m2 / n + u.eps);
  ${m.lane ? '' : 'if (lid == 0u)'} {
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
  ${rowLoop(WG, `var v = (${X} - mean) * rstd;
      ${a.hasWeight ? 'v *= wv;' : ''}
      ${a.hasBias ? 'v += bv;' : ''}
      ${a.activation ? actWgsl(a.activation, m) : ''}
      ${at(m, 'y', '')} = v;`, m, `${a.hasWeight ? `let wv = ${affAt(m, 'w_at', 'u.woff')};` : ''} ${a.hasBias ? `let bv = ${affAt(m, 'bias_at', 'u.boff')};` : ''}`)}
}`;
  const uni = layoutWords(new UniformWriter(), a)
    .u32(x.offset, w?.offset ?? 0, b?.offset ?? 0, sIn?.offset ?? 0, rm?.offset ?? 0, rv?.offset ?? 0)
    .f32(a.eps, a.momentum)
    .build();
  be.rt.dispatch({ name: 'norm_forward', key, wgsl, buffers: bufs, uniforms: uni, workgroups: grid(rowWorkgroups(m, a.rows, WG) * WG, WG) });
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
  const acc = a.accumulate ? inputs[inputs.length - 1]! : null;
  const m = rowMode(a, [x.offset, g.offset, acc?.offset ?? 0], 'backward', shapeFor(be));
  const T = m.vec ? 'vec4<f32>' : 'f32';
  const binds: Binding[] = [
    { name: 'x', type: T, rw: false },
    { name: 'g', type: T, rw: false },
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
  if (acc) {
    binds.push({ name: 'gacc', type: T, rw: false });
    bufs.push(bufferOf(acc));
  }
  binds.push({ name: 'dx', type: T, rw: true });
  bufs.push(dx.buffer);
  if (dw && db) {
    binds.push({ name: 'dw', type: 'f32', rw: true }, { name: 'db', type: 'f32', rw: true });
    bufs.push(dw.buffer, db.buffer);
  }
  const X = at(m, 'x', 'u.xoff');
  // the affine values of the current element (vec4), loaded in rowLoop's `pre`
  const pre = `${w ? `let wv = ${affAt(m, 'w_at', 'u.woff')};` : ''} ${b ? `let bv = ${affAt(m, 'bias_at', 'u.boff')};` : ''}`;
  // with a fused activation, g is first taken through it at the recomputed pre-activation
  const gEff = act ? `act_grad${m.vec ? '4' : ''}(${at(m, 'g', 'u.goff')}, (${X} - mean) * rstd${w ? ' * wv' : ''}${b ? ' + bv' : ''})` : at(m, 'g', 'u.goff');
  const dxhat = `(${gEff})${w ? ' * wv' : ''}`;
  const sh = shapeFor(be);
  const WG = sh.wg;
  const rwg = rowWorkgroups(m, a.rows, WG);
  // the affine part reads single elements (a vec4's component in vec mode)
  const one = (name: string) => (i: string) => (m.vec ? `${name}[(${i}) / 4u][(${i}) % 4u]` : `${name}[${i}]`);
  const affV = !!affine && m.vec && affineVec(affine, [x.offset, g.offset], WG);
  const Z = zero(m);
  const wgsl = (): string => `${header(sh)}
${bindings(binds)}
struct U { ${LAYOUT_FIELDS}, xoff: u32, goff: u32, soff: u32, woff: u32, boff: u32, accoff: u32${affine ? `, rwg: u32, ${AFFINE_FIELDS}` : ''} };
@group(0) @binding(${binds.length}) var<uniform> u: U;
${reduce(sh)}
${a.activation ? ACT_GRAD_WGSL[a.activation] : ''}
${a.activation && (m.vec || affV) ? ACT_GRAD4_WGSL[a.activation] : ''}
${entry(sh)} {
  ${affine ? `// workgroups past the rows compute the affine gradients
  if (wid.x + wid.y * nwg.x >= u.rwg) {
    ${affineBody(WG, act, !!w, !!b, 'wid.x + wid.y * nwg.x - u.rwg', one('x'), one('g'), affV)}
    return;
  }` : ''}
  ${rowHead(m, WG)}
  let mean = st[u.soff + 2u * r];
  let rstd = st[u.soff + 2u * r + 1u];
  ${
    a.constStats
      ? 'let m1 = 0.0; let m2 = 0.0;'
      : `var a1 = ${Z}; var a2 = ${Z};
  ${rowLoop(WG, `let dh = ${dxhat}; a1 += dh; a2 += dh * (${X} - mean) * rstd;`, m, pre)}
  let ms = ${rowSum(m, `vec2<f32>(${hsum(m, 'a1')}, ${hsum(m, 'a2')})`)} / f32(u.count);
  let m1 = ms.x; let m2 = ms.y;`
  }
  ${rowLoop(WG, `let xh = (${X} - mean) * rstd;
      ${at(m, 'dx', '')} = rstd * (${dxhat} - m1 - xh * m2)${acc ? ` + ${at(m, 'gacc', 'u.accoff')}` : ''};`, m, pre)}
}`;
  let uw = layoutWords(new UniformWriter(), a).u32(x.offset, g.offset, st.offset, w?.offset ?? 0, b?.offset ?? 0, acc?.offset ?? 0);
  if (affine) uw = affineWords(uw.u32(rwg), affine);
  be.rt.dispatch({
    name: affine ? 'norm_backward_affine' : 'norm_backward',
    key: `norm_bwd:${a.hasWeight}:${a.constStats}:${act ? `${a.activation}:${!!b}` : ''}:${!!acc}:${affine ? `affine${affV ? 'v' : ''}:` : ''}${keyOf(sh)}${modeKey(m)}${f16Key(isH(w), isH(b))}`,
    wgsl,
    buffers: bufs,
    uniforms: uw.build(),
    workgroups: grid((rwg + (affine?.size ?? 0)) * WG, WG),
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
function affineBody(WG: number, act: boolean, hasW: boolean, hasB: boolean, aExpr: string, xAt = (i: string) => `x[${i}]`, gAt = (i: string) => `g[${i}]`, vec = false): string {
  if (vec) return affineBodyVec(WG, act, hasW, hasB, aExpr);
  const gv = act ? `act_grad(${gAt('u.goff + o')}, xh${hasW ? ' * w_at(u.woff + a)' : ''}${hasB ? ' + bias_at(u.boff + a)' : ''})` : gAt('u.goff + o');
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
    let xh = (${xAt('u.xoff + o')} - st[u.soff + 2u * row]) * st[u.soff + 2u * row + 1u];
    let gv = ${gv};
    acc += vec2<f32>(gv * xh, gv);
    s += rs; p += qs;
    if (s >= u.aInner) { s -= u.aInner; p += 1u; }
  }
  let t = wg_sum(acc, lid);
  if (lid == 0u) { dw[a] = t.x; db[a] = t.y; }`;
}

/**
 * affineBody on vec4s (x and g bound as vec4 arrays): per outer step the row's statistics load once
 * and the lanes stride its `inner` elements as vec4s.
 */
function affineBodyVec(WG: number, act: boolean, hasW: boolean, hasB: boolean, aExpr: string): string {
  const gl = 'g[(u.goff + o) / 4u]';
  const gv = act ? `act_grad4(${gl}, xh${hasW ? ' * w_at(u.woff + a)' : ''}${hasB ? ' + bias_at(u.boff + a)' : ''})` : gl;
  return `let a = ${aExpr};
  if (a >= u.aSize) { return; }
  let lid = lidv.x;
  let base = a * u.aAStride;
  let rbase = a / u.aDiv;
  var s1 = vec4<f32>(0.0); var s2 = vec4<f32>(0.0);
  for (var p = 0u; p < u.aOuter; p++) {
    let row = p * u.aRowP + rbase;
    let mean = st[u.soff + 2u * row]; let rstd = st[u.soff + 2u * row + 1u];
    let ob = base + p * u.aPStride;
    for (var s = lid * 4u; s < u.aInner; s += ${4 * WG}u) {
      let o = ob + s;
      let xh = (x[(u.xoff + o) / 4u] - mean) * rstd;
      let gv = ${gv};
      s1 += gv * xh; s2 += gv;
    }
  }
  let t = wg_sum(vec2<f32>(dot(s1, vec4<f32>(1.0)), dot(s2, vec4<f32>(1.0))), lid);
  if (lid == 0u) { dw[a] = t.x; db[a] = t.y; }`;
}

/** The affine gradients can read x and g as vec4s: every stride and offset a multiple of 4 (and, unless forced, enough of them per outer step to keep the lanes busy). */
function affineVec(a: NormAffineGradAttrs, offsets: number[], WG: number): boolean {
  const m4 = (v: number) => v % 4 === 0;
  if (forced === 'scalar' || !(m4(a.inner) && m4(a.pStride) && m4(a.aStride) && offsets.every(m4))) return false;
  return forced !== 'auto' || a.inner >= 4 * WG;
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
  const vec = affineVec(a, [x!.offset, g!.offset], WG);
  const T = vec ? 'vec4<f32>' : 'f32';
  const binds: Binding[] = [
    { name: 'x', type: T, rw: false },
    { name: 'g', type: T, rw: false },
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
${a.activation ? (vec ? ACT_GRAD4_WGSL : ACT_GRAD_WGSL)[a.activation] : ''}
${entry(sh)} {
  ${affineBody(WG, act, !!w, !!b, 'wid.x + wid.y * nwg.x', undefined, undefined, vec)}
}`;
  const uni = affineWords(new UniformWriter(), a).u32(x!.offset, g!.offset, st!.offset, w?.offset ?? 0, b?.offset ?? 0).build();
  be.rt.dispatch({
    name: 'norm_affine_grad',
    key: `norm_affine_grad:${act ? `${a.activation}:${!!w}:${!!b}` : ''}:${keyOf(sh)}${vec ? ':v' : ''}${f16Key(isH(w), isH(b))}`,
    wgsl,
    buffers: [bufferOf(x!), bufferOf(g!), bufferOf(st!), ...(w ? [bufferOf(w)] : []), ...(b ? [bufferOf(b)] : []), dw.buffer, db.buffer],
    uniforms: uni,
    workgroups: grid(a.size * WG, WG),
  });
  return [dw, db];
};
