// conv kernels (WebGPU): listed in the WebGPU kernel table (backends/webgpu/kernels/index.ts).
// Two variants chosen per adapter (see 'variants' below): this file's implicit GEMM and webgpu-window.ts.
import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import type { Conv2dAttrs } from './index.js';
import { runWindow, windowApplies, windowPlan, windowDispatch, dispatchConv, addendInStore, addendOffsets, type ConvDispatch, type ConvOffsets, type ConvF16 } from './webgpu-window.js';
import { readBinding, f16Key } from '../cast/wgsl.js';
import { subgroupLanesFor } from '../matmul/webgpu-subgroup.js';
import { matmulVariant } from '../matmul/webgpu.js';
import { im2colApplies, im2colForward, im2colGradInput, im2colGradWeight } from './webgpu-im2col.js';
import { pointwiseApplies, pointwiseConv } from './webgpu-pointwise.js';
import { registerTunable, variantFor, setVariant, supportedVariants, tune, type TuneDispatch, type TuneResult } from '../../backends/webgpu/tuning.js';
import { softwareThreads } from '#platform';
import { contiguousStrides, isContiguous, isContiguousFrom, numel, shapesEqual } from '../../shape.js';

/**
 * The forward pass and both gradients of conv2d as implicit GEMMs C[m, n] = Σ_k A[m, k] · B[k, n]
 * (nothing is materialised; per group g):
 *   fwd    m = out channel, n = (b, oy, ox), k = (ci, r, s): A = weight, B = gathered x
 *   dgrad  m = in channel,  n = (b, iy, ix), k = (o, r, s):  A = weight, B = gathered dy (taps that
 *          land between strided outputs are skipped by a remainder test, no division per element)
 *   wgrad  m = out channel, n = (ci, r, s), k = (b, oy, ox): A = dy,     B = gathered x; the long
 *          k = N·Ho·Wo axis is split over workgroups when the output is too small to fill the device
 * Each invocation owns TM rows × 4·NV columns in registers. All invocations of a workgroup share
 * the rows, so A is read at workgroup-uniform addresses; with subgroups, lanes instead load 8
 * consecutive k of A each and share them by subgroupBroadcast (GUIDE §1: per-lane loads are what
 * costs on lavapipe). B is loaded once per k and reused across the TM rows. No workgroup memory and
 * no barriers; k-decoding is incremental (no integer division in the loop).
 */
type Mode = 'fwd' | 'dgrad' | 'wgrad';

interface Plan {
  mode: Mode;
  tm: number;
  nv: number;
  wg: number;
  sg: boolean;
  bias: boolean;
  /** wgrad: also Σ_k A[m, k] per row (Σ dy per out channel: the bias gradient, Conv2dAttrs.biasGrad). */
  rowSums: boolean;
  /** A (fwd / dgrad: the weights) is stored as float16: read in place through in1_at. */
  aF16: boolean;
  /** The bias is stored as float16. */
  biasF16: boolean;
  /** fwd / dgrad: a tensor of the output's shape is added in the store (WindowPlan.addend's layout). */
  addend: boolean;
}

const rep = (n: number, f: (i: number) => string, sep = '\n  '): string => Array.from({ length: n }, (_, i) => f(i)).join(sep);

const U_FIELDS = [
  'M', 'NC', 'KR', 'groups', 'n', 'c', 'h', 'w', 'k', 'ho', 'wo', 'kh', 'kw', 'sh', 'sw', 'dh', 'dw', 'pt', 'pl',
  'cg', 'kg', 'hw', 'howo', 'khkw', 'off0', 'off1', 'off2', 'kChunk', 'stepQ', 'stepR', 'dhq', 'dhr', 'dwq', 'dwr', 'off3', 'as0', 'as1', 'apix', 'dyb',
] as const;
type UName = (typeof U_FIELDS)[number];

/** Per-column setup, B gather and uniform k-counter state for each mode. */
interface ModeCode {
  /** Declarations per column j (uses nn = clamped column index, okc = column in range). */
  col: (j: number) => string;
  /** Uniform counter declarations at k = kBegin. */
  kInit: string;
  /** B value of column j at the current k (an expression after `pre`). */
  bLoad: (j: number) => string;
  /** Statements advancing the uniform counters to k + 1. */
  kNext: string;
  /** Plain path: address of A for row i at the current k. */
  aAddr: (i: number) => string;
  /** Row base of A for row i (row index variable `rw${i}`). */
  aBase: (i: number) => string;
  /** Subgroup path: per-lane decode of ka = kBegin + lane, and its advance by 8. */
  laneInit: string;
  laneNext: string;
  laneAddr: (i: number) => string;
  /** Output address of row m (expression `m`) for column j. */
  out: (j: number) => string;
}

function modeCode(mode: Mode): ModeCode {
  if (mode === 'fwd') {
    return {
      col: (j) => `let cb${j} = u.off0 + (bb${j} * u.c + g * u.cg) * u.hw;
  let cy${j} = select(-1073741824, i32((pp${j} / u.wo) * u.sh) - i32(u.pt), okc${j});
  let cx${j} = i32((pp${j} % u.wo) * u.sw) - i32(u.pl);
  let ob${j} = (bb${j} * u.k + g * u.kg) * u.howo + pp${j};`,
      kInit: 'var ks = 0u; var kr = 0u; var ry = 0; var sx = 0; var coff = 0u;',
      bLoad: (j) => `let iy${j} = cy${j} + ry; let ix${j} = cx${j} + sx;
      let ok${j} = u32(iy${j}) < u.h && u32(ix${j}) < u.w;
      let b${j} = select(0.0, in0[select(0u, cb${j} + coff + u32(iy${j}) * u.w + u32(ix${j}), ok${j})], ok${j});`,
      kNext: `ks++; sx += i32(u.dw);
      if (ks == u.kw) { ks = 0u; sx = 0; kr++; ry += i32(u.dh); if (kr == u.kh) { kr = 0u; ry = 0; coff += u.hw; } }`,
      aBase: (i) => `u.off1 + (g * u.kg + rw${i}) * u.KR`,
      aAddr: (i) => `ab${i} + k`,
      laneInit: '',
      laneNext: '',
      laneAddr: (i) => `ab${i} + min(ka, u.KR - 1u)`,
      out: (j) => `ob${j} + m * u.howo`,
    };
  }
  if (mode === 'dgrad') {
    return {
      col: (j) => `let cb${j} = u.off0 + bb${j} * u.dyb + g * u.kg * u.howo;
  let ty${j} = (pp${j} / u.w) + u.pt; let tx${j} = (pp${j} % u.w) + u.pl;
  let qy${j} = i32(ty${j} / u.sh); let ry${j} = select(0xffffffffu, ty${j} % u.sh, okc${j});
  let qx${j} = i32(tx${j} / u.sw); let rx${j} = tx${j} % u.sw;
  let ob${j} = (bb${j} * u.c + g * u.cg) * u.hw + pp${j};`,
      // (rq, rr) = r·dh as quotient and remainder by sh; likewise (sq, sr) for columns
      kInit: 'var ks = 0u; var kr = 0u; var rq = 0; var rr = 0u; var sq = 0; var sr = 0u; var koff = 0u; var krs = 0u; var kaoff = 0u;',
      bLoad: (j) => `let oy${j} = qy${j} - rq; let ox${j} = qx${j} - sq;
      let ok${j} = ry${j} == rr && rx${j} == sr && u32(oy${j}) < u.ho && u32(ox${j}) < u.wo;
      let b${j} = select(0.0, in0[select(0u, cb${j} + koff + u32(oy${j}) * u.wo + u32(ox${j}), ok${j})], ok${j});`,
      kNext: `ks++; krs++; sq += i32(u.dwq); sr += u.dwr; if (sr >= u.sw) { sr -= u.sw; sq++; }
      if (ks == u.kw) {
        ks = 0u; sq = 0; sr = 0u; kr++;
        rq += i32(u.dhq); rr += u.dhr; if (rr >= u.sh) { rr -= u.sh; rq++; }
        if (kr == u.kh) { kr = 0u; rq = 0; rr = 0u; krs = 0u; koff += u.howo; kaoff += u.cg * u.khkw; }
      }`,
      aBase: (i) => `u.off1 + g * u.kg * u.cg * u.khkw + rw${i} * u.khkw`,
      aAddr: (i) => `ab${i} + kaoff + krs`,
      // lane's k = (lq, lr) as quotient and remainder by khkw
      laneInit: 'var lq = lane / u.khkw; var lr = lane % u.khkw;',
      laneNext: 'lq += u.stepQ; lr += u.stepR; if (lr >= u.khkw) { lr -= u.khkw; lq++; }',
      laneAddr: (i) => `ab${i} + min(lq, u.kg - 1u) * u.cg * u.khkw + lr`,
      out: (j) => `ob${j} + m * u.hw`,
    };
  }
  return {
    col: (j) => `let rs${j} = nn${j} % u.khkw;
  let cb${j} = u.off0 + (g * u.cg + nn${j} / u.khkw) * u.hw;
  let cy${j} = select(-1073741824, i32((rs${j} / u.kw) * u.dh) - i32(u.pt), okc${j});
  let cx${j} = i32((rs${j} % u.kw) * u.dw) - i32(u.pl);
  let ob${j} = part * PS + g * u.kg * u.NC + nn${j};`,
    kInit: `let p0 = kBegin % u.howo;
  var kb = kBegin / u.howo; var kp = p0; var kox = p0 % u.wo; var koy = p0 / u.wo;
  var ys = i32(koy * u.sh); var xs = i32(kox * u.sw); var boff = kb * u.c * u.hw; var kaoff = kb * u.dyb + kp;`,
    bLoad: (j) => `let iy${j} = cy${j} + ys; let ix${j} = cx${j} + xs;
      let ok${j} = u32(iy${j}) < u.h && u32(ix${j}) < u.w;
      let b${j} = select(0.0, in0[select(0u, cb${j} + boff + u32(iy${j}) * u.w + u32(ix${j}), ok${j})], ok${j});`,
    kNext: `kox++; xs += i32(u.sw); kaoff++;
      if (kox == u.wo) {
        kox = 0u; xs = 0; koy++; ys += i32(u.sh);
        if (koy == u.ho) { koy = 0u; ys = 0; boff += u.c * u.hw; kaoff += u.dyb - u.howo; }
      }`,
    aBase: (i) => `u.off1 + (g * u.kg + rw${i}) * u.howo`,
    aAddr: (i) => `ab${i} + kaoff`,
    // lane's k = (lq, lr) as batch and position
    laneInit: 'let la = kBegin + lane; var lq = la / u.howo; var lr = la % u.howo;',
    laneNext: 'lq += u.stepQ; lr += u.stepR; if (lr >= u.howo) { lr -= u.howo; lq++; }',
    laneAddr: (i) => `ab${i} + min(lq, u.n - 1u) * u.dyb + lr`,
    out: (j) => `ob${j} + m * u.NC`,
  };
}

function genWgsl(p: Plan): string {
  const { tm, nv, wg, sg } = p;
  const tn = 4 * nv;
  const mc = modeCode(p.mode);
  const binds = ['in0', 'in1', ...(p.bias ? ['bias'] : []), ...(p.addend ? ['addend'] : [])];
  const bvec = (v: number): string => `vec4<f32>(b${4 * v}, b${4 * v + 1}, b${4 * v + 2}, b${4 * v + 3})`;
  const fmas = (aExpr: (i: number) => string): string =>
    rep(tm, (i) => `{ let a = ${aExpr(i)};\n      ${rep(nv, (v) => `acc[${i * nv + v}] = fma(vec4<f32>(a), bv${v}, acc[${i * nv + v}]);`, ' ')} }`, '\n      ');
  const step = (aExpr: (i: number) => string): string => `${rep(tn, mc.bLoad, '\n      ')}
      ${rep(nv, (v) => `let bv${v} = ${bvec(v)};`, ' ')}
      ${fmas(aExpr)}
      ${mc.kNext}`;
  const rs = p.rowSums;
  const plainLoop = `for (var k = kBegin; k < kEnd; k++) {
      ${rep(tm, (i) => `let a${i} = in1_at(${mc.aAddr(i)});`, ' ')}${rs ? `\n      ${rep(tm, (i) => `bsum${i} += a${i};`, ' ')}` : ''}
      ${step((i) => `a${i}`)}
    }`;
  // Lanes 0..7 of each subgroup hold A[row, k0 + lane]; step kk broadcasts lane kk.
  const sgLoop = `let lane = sgl & 7u;
    ${mc.laneInit}
    for (var k0 = kBegin; k0 < kEnd; k0 += 8u) {
      let ka = k0 + lane;
      let aok = ka < kEnd;
      ${rep(tm, (i) => `let a${i} = select(0.0, in1_at(${mc.laneAddr(i)}), aok);`, ' ')}${rs ? `\n      ${rep(tm, (i) => `blane${i} += a${i};`, ' ')}` : ''}
      ${mc.laneNext}
      ${rep(
        8,
        (kk) => `if (k0 + ${kk}u < kEnd) {
      ${step((i) => `subgroupBroadcast(a${i}, ${kk}u)`)}
      }`,
        '\n      ',
      )}
    }${rs ? `\n    ${rep(tm, (i) => `bsum${i} = subgroupAdd(select(0.0, blane${i}, sgl < 8u));`, ' ')}` : ''}`;
  const cols = rep(tn, (j) => `let okc${j} = n0 + ${j}u < u.NC; let nn${j} = min(n0 + ${j}u, u.NC - 1u);
  ${p.mode === 'wgrad' ? '' : `let bb${j} = nn${j} / ${p.mode === 'fwd' ? 'u.howo' : 'u.hw'}; let pp${j} = nn${j} % ${p.mode === 'fwd' ? 'u.howo' : 'u.hw'};`}
  ${mc.col(j)}`);
  // row sums: every invocation of the row tile has them, the first one of the first column tile writes
  const store = rep(tm, (i) => `{
    let m = m0 + ${i}u;
    if (m < u.M) {
      ${p.bias ? `let bs = bias_at(u.off2 + g * u.kg + m);` : ''}
      ${rep(tn, (j) => `if (okc${j}) { out[${mc.out(j)}] = acc[${i * nv + (j >> 2)}][${j & 3}]${p.bias ? ' + bs' : ''}${p.addend ? ` + addend[u.off3 + bb${j} * u.as0 + (g * u.M + m) * u.as1 + u.apix * pp${j}]` : ''}; }`, '\n      ')}
      ${rs ? `if (wid.x == 0u && lid.x == 0u) { out[part * PS + u.k * u.NC + g * u.kg + m] = bsum${i}; }` : ''}
    }
  }`);
  return `${sg ? 'enable subgroups;\n' : ''}
@group(0) @binding(0) var<storage, read> in0: array<f32>;
${readBinding(1, 'in1', p.aF16)}
${p.bias ? readBinding(2, 'bias', p.biasF16) : ''}
${p.addend ? `@group(0) @binding(${binds.length - 1}) var<storage, read> addend: array<f32>;` : ''}
@group(0) @binding(${binds.length}) var<storage, read_write> out: array<f32>;
struct U { ${U_FIELDS.map((f) => `${f}: u32`).join(', ')} };
@group(0) @binding(${binds.length + 1}) var<uniform> u: U;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${sg ? ', @builtin(subgroup_invocation_id) sgl: u32, @builtin(subgroup_size) sgs: u32' : ''}) {
  let g = wid.z % u.groups;
  let part = wid.z / u.groups;
  let kBegin = part * u.kChunk;
  let kEnd = min(kBegin + u.kChunk, u.KR);
  ${p.mode === 'wgrad' ? `// floats per split-K partial result (the weight gradient, then the row sums)\n  let PS = u.k * u.NC${rs ? ' + u.k' : ''};` : ''}
  let m0 = wid.y * ${tm}u;
  let n0 = (wid.x * ${wg}u + lid.x) * ${tn}u;
  // rows past M are clamped for loading and masked at the store
  ${rep(tm, (i) => `let rw${i} = min(m0 + ${i}u, u.M - 1u); let ab${i} = ${mc.aBase(i)};`)}
  ${cols}
  var acc: array<vec4<f32>, ${tm * nv}>;${rs ? `\n  ${rep(tm, (i) => `var bsum${i} = 0.0; var blane${i} = 0.0;`, ' ')}` : ''}
  ${mc.kInit}
  ${sg ? `if (sgs >= 8u) {\n    ${sgLoop}\n  } else {\n    ${plainLoop}\n  }` : plainLoop}
  ${store}
}`;
}

function nextPow2(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

const GEMM_WG = 32;

/** The implicit-GEMM dispatch of one mode (the universal variant); exported for tests (split-K coverage). */
export function gemmDispatch(mode: Mode, a: Conv2dAttrs, offs: ConvOffsets, sg: boolean, bias: boolean, f16: ConvF16 = {}, addend = false): ConvDispatch {
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const rowSums = mode === 'wgrad' && !!a.biasGrad;
  const hw = a.h * a.w, howo = a.ho * a.wo, khkw = a.kh * a.kw;
  const [M, NC, KR] =
    mode === 'fwd' ? [kg, a.n * howo, cg * khkw] : mode === 'dgrad' ? [cg, a.n * hw, kg * khkw] : [kg, cg * khkw, a.n * howo];
  const outSize = mode === 'fwd' ? a.n * a.k * howo : mode === 'dgrad' ? a.n * a.c * hw : a.k * cg * khkw + (rowSums ? a.k : 0);
  const tm = Math.min(nextPow2(M), 32);
  const nv = NC >= 4096 ? 2 : 1;
  const wg = GEMM_WG;
  const tilesX = Math.ceil(NC / (wg * 4 * nv));
  const tiles = tilesX * Math.ceil(M / tm) * a.groups;
  // Split the long reduction of the weight gradient when the output alone gives too few workgroups.
  let splits = 1;
  if (mode === 'wgrad' && tiles < 64 && KR >= 2048) splits = Math.min(Math.ceil(128 / tiles), Math.floor(KR / 1024));
  const kChunk = splits > 1 ? Math.ceil(KR / splits / 8) * 8 : KR;
  splits = Math.ceil(KR / kChunk);
  if (tilesX > 65535) throw new RangeError(`conv2d: ${NC} output columns exceed one dispatch (split the batch)`);
  const plan: Plan = { mode, tm, nv, wg, sg, bias, rowSums, aF16: !!f16.a, biasF16: !!f16.bias, addend };
  const D = mode === 'dgrad' ? khkw : howo;
  const vals: Record<UName, number> = {
    M, NC, KR, groups: a.groups, n: a.n, c: a.c, h: a.h, w: a.w, k: a.k, ho: a.ho, wo: a.wo, kh: a.kh, kw: a.kw,
    sh: a.strideH, sw: a.strideW, dh: a.dilH, dw: a.dilW, pt: a.padTop, pl: a.padLeft, cg, kg, hw, howo, khkw,
    off0: offs.off0, off1: offs.off1, off2: offs.off2, off3: offs.off3 ?? 0, as0: offs.as0 ?? 0, as1: offs.as1 ?? 0, apix: offs.apix ?? 0,
    dyb: offs.dyb ?? a.k * howo, kChunk,
    stepQ: Math.floor(8 / D), stepR: 8 % D,
    dhq: Math.floor(a.dilH / a.strideH), dhr: a.dilH % a.strideH, dwq: Math.floor(a.dilW / a.strideW), dwr: a.dilW % a.strideW,
  };
  return {
    key: `conv2d:${mode}:${tm}:${nv}:${wg}:${sg}:${bias}:${rowSums}${addend ? ':add' : ''}${f16Key(!!f16.a, !!f16.bias)}`,
    wgsl: () => genWgsl(plan),
    uniforms: new UniformWriter().u32(...U_FIELDS.map((f) => vals[f])).build(),
    workgroups: [tilesX, Math.ceil(M / tm), a.groups * splits],
    splits,
    outSize,
  };
}

/**
 * Runs one of the three GEMMs; returns the output storage. `addend` (fwd / dgrad: a float32 tensor of
 * the output's shape) is added in the kernel's store where the path has that epilogue (window, GEMM),
 * by one elementwise add after it otherwise (im2col, empty reductions, strided addends).
 */
function runConvGemm(be: WebGPUBackend, mode: Mode, a: Conv2dAttrs, in0: View, in1: View, bias: View | null, addend: View | null = null): GpuStorage {
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const KR = mode === 'fwd' ? cg * a.kh * a.kw : mode === 'dgrad' ? kg * a.kh * a.kw : a.n * a.ho * a.wo;
  const outShape = mode === 'fwd' ? [a.n, a.k, a.ho, a.wo] : mode === 'dgrad' ? [a.n, a.c, a.h, a.w] : null;
  const outSize = outShape ? numel(outShape) : a.k * cg * a.kh * a.kw + (a.biasGrad ? a.k : 0);
  if (addend && (!outShape || !shapesEqual(addend.shape, outShape) || addend.dtype !== 'float32')) {
    throw new RangeError(`conv2d (${mode}): the addend must be float32 of the output's shape ${JSON.stringify(outShape)}, got ${addend.dtype} ${JSON.stringify(addend.shape)}`);
  }
  if (outSize === 0) return be.alloc('float32', 0);
  // dy (dgrad: in0, wgrad: in1) may come with any image stride (a channel slice of a concatenation's
  // gradient); the window and GEMM kernels read it so, anything else gets a dense copy first
  const dyAt = mode === 'dgrad' ? 0 : mode === 'wgrad' ? 1 : -1;
  const owned: GpuStorage[] = [];
  const dense = (v: View): View => {
    if (isContiguous(v.shape, v.strides)) return v;
    const shape = [...v.shape];
    const st = be.run('elementwise', [v], { op: 'copy', params: [], shape }) as GpuStorage;
    owned.push(st);
    return { storage: st, shape, strides: contiguousStrides(shape), offset: 0, dtype: v.dtype };
  };
  try {
    if (dyAt >= 0) {
      const dy = dyAt === 0 ? in0 : in1;
      if (!isContiguousFrom(dy.shape, dy.strides, 1)) {
        if (dyAt === 0) in0 = dense(in0);
        else in1 = dense(in1);
      }
    }
    return runConvPaths(be, mode, a, in0, in1, bias, addend, outShape, outSize, KR, dense, dyAt);
  } finally {
    for (const o of owned) o.release();
  }
}

function runConvPaths(
  be: WebGPUBackend, mode: Mode, a: Conv2dAttrs, in0: View, in1: View, bias: View | null, addend: View | null,
  outShape: number[] | null, outSize: number, KR: number, dense: (v: View) => View, dyAt: number,
): GpuStorage {
  // paths without the epilogue (and strided addends): one add after the kernel
  const addAfter = (out: GpuStorage): GpuStorage => (addend ? plusAddend(be, out, addend, outShape!) : out);
  const inStore = addend !== null && addendInStore(addend);
  const after = (out: GpuStorage): GpuStorage => (inStore ? out : addAfter(out));
  if (KR === 0) {
    const out = be.alloc('float32', outSize);
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [outSize], out: { storage: out, shape: [outSize], strides: [1], offset: 0, dtype: 'float32' } });
    return addAfter(out);
  }
  // 1x1, stride 1: a batch of products on the matmul kernel (where matmul runs its subgroup form)
  if (mode !== 'wgrad' && matmulVariant(be) === 'subgroup' && pointwiseApplies(mode, a, in0, in1, addend)) return pointwiseConv(be, mode, a, in0, in1, bias, addend);
  // few output pixels, many channels: an explicit im2col + the matmul kernel's fast form (where matmul runs its subgroup form)
  if (matmulVariant(be) === 'subgroup' && im2colApplies(be, mode, a, mode === 'wgrad' ? in0 : in1)) {
    // the im2col gathers read dy densely
    if (dyAt === 0) in0 = dense(in0);
    else if (dyAt === 1) in1 = dense(in1);
    const out = mode === 'fwd' ? im2colForward(be, a, in0, in1, bias) : mode === 'dgrad' ? im2colGradInput(be, a, in0, in1) : im2colGradWeight(be, a, in0, in1);
    return addAfter(out);
  }
  const add = inStore ? addend : null;
  const lanes = convWindowLanes(be);
  if (lanes !== null && convVariant(be) === 'window' && windowApplies(mode, a, lanes)) {
    return after(runWindow(be, windowPlan(mode, a, !!bias, lanes, { splitBelow: convSplitBelow(be) }), a, in0, in1, bias, add));
  }
  const dyb = dyAt === 0 ? in0.strides[0]! : dyAt === 1 ? in1.strides[0]! : undefined;
  const d = gemmDispatch(mode, a, { off0: in0.offset, off1: in1.offset, off2: bias ? bias.offset : 0, ...(dyb !== undefined ? { dyb } : {}), ...addendOffsets(add) }, be.rt.subgroups, !!bias, { a: in1.dtype === 'float16', bias: bias?.dtype === 'float16' }, !!add);
  return after(dispatchConv(be, `conv2d_${mode}`, d, in0, in1, bias, add));
}

/** out + addend (any strides) by one elementwise add; out is released. */
function plusAddend(be: WebGPUBackend, out: GpuStorage, addend: View, shape: number[]): GpuStorage {
  const sum = be.run('elementwise', [{ storage: out, shape, strides: contiguousStrides(shape), offset: 0, dtype: 'float32' }, addend], { op: 'add', params: [], shape }) as GpuStorage;
  out.release();
  return sum;
}

/**
 * The window wgrad splits its reduction (partials + one reduce dispatch) when its output gives fewer
 * workgroups than this. A GPU wants many workgroups in flight; a software adapter only enough for its
 * threads (one per thread): there the partials cost more than they gain (tiny UNet shapes, CPU time
 * alternated: unsplit 1.1-1.3x cheaper) and each split costs one more dispatch.
 */
export function convSplitBelow(be: WebGPUBackend): number {
  return splitOverride.get(be) ?? (be.rt.info.isSoftware ? softwareThreads() : 64);
}

const splitOverride = new WeakMap<WebGPUBackend, number>();
/** Forces the split threshold (tests: a GPU's 64 on a software adapter reaches the split path); undefined restores it. */
export function setConvSplitBelow(be: WebGPUBackend, n: number | undefined): void {
  if (n === undefined) splitOverride.delete(be);
  else splitOverride.set(be, n);
}

// ------------------------------------------------------------------ variants

/**
 * Two variants, chosen per adapter by measurement (tuning.ts), as matmul's are:
 * - 'gemm': the implicit GEMM above, the universal one (any subgroup size or none);
 * - 'window': register tiles that share input loads between neighbouring taps and weights by
 *   subgroup broadcasts (webgpu-window.ts), for lavapipe; problems it does not cover or where it
 *   measured slower (windowApplies: kernels wider than 4, 1x1 forward / stride-1 input gradient,
 *   dgrad with stride above 4 along x or with big weights on few pixels) still run the GEMM.
 */
export type ConvVariant = 'gemm' | 'window';
export const CONV_VARIANTS: readonly ConvVariant[] = ['gemm', 'window'];
const CONV_TUNING_VERSION = 2; // 2: window weights as vec4 rows, larger problem

const lanesOverride = new WeakMap<WebGPUBackend, 4 | 8>();

/** The window variant's broadcast width here, or null where it must not run (no or too small subgroups). */
export function convWindowLanes(be: WebGPUBackend): 4 | 8 | null {
  if (!be.rt.subgroups) return null;
  return lanesOverride.get(be) ?? subgroupLanesFor(be.rt.info.subgroupMinSize, be.rt.info.subgroupMaxSize);
}

/**
 * Forces the window variant's broadcast width (tests: 4 lanes on an 8-lane adapter runs the code
 * 4-lane adapters take); refused above the adapter's minimum subgroup size, where it would be wrong.
 */
export function setConvWindowLanes(be: WebGPUBackend, lanes: 4 | 8 | undefined): void {
  if (lanes === undefined) {
    lanesOverride.delete(be);
    return;
  }
  const natural = be.rt.subgroups ? subgroupLanesFor(be.rt.info.subgroupMinSize, be.rt.info.subgroupMaxSize) : null;
  if (natural === null || lanes > natural) throw new Error(`conv2d: ${lanes}-lane broadcasts need subgroups of at least ${lanes} lanes on this adapter`);
  lanesOverride.set(be, lanes);
}

function supported(be: WebGPUBackend, v: string): boolean {
  if (v === 'window') return convWindowLanes(be) !== null;
  return v === 'gemm';
}

/** Without a measurement: software adapters with subgroups want the window variant. */
function heuristic(be: WebGPUBackend): ConvVariant {
  return be.rt.info.isSoftware && supported(be, 'window') ? 'window' : 'gemm';
}

/**
 * The tuner's problem: a forward 3x3 conv, pad 1, x [4, 64, 16, 16], weights [64, 64, 3, 3]
 * (150 MFLOP: a few ms on lavapipe, enough workgroups for both variants to fill 2 cores).
 */
const TUNE: Conv2dAttrs = {
  n: 4, c: 64, h: 16, w: 16, k: 64, ho: 16, wo: 16, kh: 3, kw: 3,
  strideH: 1, strideW: 1, dilH: 1, dilW: 1, padTop: 1, padLeft: 1, groups: 1,
};

registerTunable('conv2d', {
  version: CONV_TUNING_VERSION,
  variants: CONV_VARIANTS,
  heuristic,
  supported,
  problem: (be) => {
    const a = TUNE;
    const offs = { off0: 0, off1: 0, off2: 0 };
    const candidates: Record<string, TuneDispatch[]> = {};
    // a runtime-epilogue kernel binds stand-ins for its bias and addend (the input)
    const one = (d: ConvDispatch): TuneDispatch[] => [{ key: d.key, wgsl: d.wgsl, buffers: d.runtimeEpilogue ? [0, 1, 0, 0, 2] : [0, 1, 2], uniforms: d.uniforms, workgroups: d.workgroups }];
    candidates.gemm = one(gemmDispatch('fwd', a, offs, be.rt.subgroups, false));
    const lanes = convWindowLanes(be);
    if (lanes !== null) candidates.window = one(windowDispatch(windowPlan('fwd', a, false, lanes), a, offs));
    const check = {
      output: 2,
      expected: ([x, w]: Float32Array[]) => referenceConv(x!, w!, a),
      tolerance: 1e-4 * Math.sqrt(a.c * a.kh * a.kw),
    };
    return { buffers: [a.n * a.c * a.h * a.w, a.k * a.c * a.kh * a.kw, a.n * a.k * a.ho * a.wo], candidates, check };
  },
});

/** Forward conv (groups 1) in f64 accumulators: the tuner's reference. */
function referenceConv(x: Float32Array, w: Float32Array, a: Conv2dAttrs): Float32Array {
  const y = new Float32Array(a.n * a.k * a.ho * a.wo);
  for (let b = 0; b < a.n; b++) {
    for (let o = 0; o < a.k; o++) {
      for (let oy = 0; oy < a.ho; oy++) {
        for (let ox = 0; ox < a.wo; ox++) {
          let acc = 0;
          for (let ci = 0; ci < a.c; ci++) {
            for (let r = 0; r < a.kh; r++) {
              const iy = oy * a.strideH - a.padTop + r * a.dilH;
              if (iy < 0 || iy >= a.h) continue;
              for (let s = 0; s < a.kw; s++) {
                const ix = ox * a.strideW - a.padLeft + s * a.dilW;
                if (ix < 0 || ix >= a.w) continue;
                acc += x[((b * a.c + ci) * a.h + iy) * a.w + ix]! * w[((o * a.c + ci) * a.kh + r) * a.kw + s]!;
              }
            }
          }
          y[((b * a.k + o) * a.ho + oy) * a.wo + ox] = acc;
        }
      }
    }
  }
  return y;
}

/** The variant conv2d uses on this backend now (forced by env, overridden, tuned, cached or heuristic). */
export function convVariant(be: WebGPUBackend): ConvVariant {
  return variantFor(be, 'conv2d') as ConvVariant;
}
/** Forces a variant on this backend (tests, benchmarks); undefined restores the tuned choice. */
export function setConvVariant(be: WebGPUBackend, v: ConvVariant | undefined): void {
  setVariant(be, 'conv2d', v);
}
/** The variants this adapter can run. */
export function convVariants(be: WebGPUBackend): ConvVariant[] {
  return supportedVariants(be, 'conv2d') as ConvVariant[];
}
/** Measures the variants now (cached on disk) instead of in the background at first use. */
export function tuneConv(be: WebGPUBackend, opts: { force?: boolean } = {}): Promise<TuneResult | null> {
  return tune(be, 'conv2d', opts);
}

export const conv2d: KernelFn<WebGPUBackend, 'conv2d'> = (be, inputs, attrs) => {
  const a = attrs;
  return runConvGemm(be, 'fwd', a, inputs[0]!, inputs[1]!, a.hasBias ? inputs[2]! : null, a.hasAddend ? inputs[a.hasBias ? 3 : 2]! : null);
};
export const conv2d_grad_input: KernelFn<WebGPUBackend, 'conv2d_grad_input'> = (be, [dy, w, acc], attrs) =>
  runConvGemm(be, 'dgrad', attrs, dy!, w!, null, attrs.hasAddend ? acc! : null);
export const conv2d_grad_weight: KernelFn<WebGPUBackend, 'conv2d_grad_weight'> = (be, [x, dy], attrs) =>
  runConvGemm(be, 'wgrad', attrs, x!, dy!, null);
