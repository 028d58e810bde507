// conv 'window' variant (WebGPU): register tiles that share input loads between neighbouring taps.
import type { View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import { readBinding, readBindingVec4, f16Key } from '../cast/wgsl.js';
import type { Conv2dAttrs } from './index.js';
// the same flag bits as the matmul's runtime epilogue
import { EPILOGUE_BIAS, EPILOGUE_ADDEND, epilogueFlags } from '../matmul/layout.js';

/**
 * The implicit GEMM (webgpu.ts) gathers one input value per (column, tap); on lavapipe those
 * per-lane loads are what costs (GUIDE §1), and neighbouring taps of a row read mostly the same
 * values. Here the kernel width, stride and dilation along x are compile-time constants, so each
 * invocation loads the union of the input positions its columns touch along one kernel row once
 * (for 3x3 stride 1 and 8 columns: 10 loads instead of 24) and reuses them across the row's taps and
 * across TM output rows, whose weights every lane needs: lanes load them (fwd: as vec4s at
 * consecutive addresses; dgrad: 4 scalars each, gathered from the weights' own layout) and share them
 * by subgroupBroadcast (loads at workgroup-uniform addresses are slower on lavapipe than per-lane
 * gathers).
 *   fwd    rows = out channels, an invocation owns TN consecutive output pixels of one image row
 *   dgrad  rows = in channels,  an invocation owns TN consecutive input pixels; with stride sw along x,
 *          TN is a multiple of sw, so which of its pixels each tap reaches, and at which dy column
 *          relative to the tile's, is compile-time (given pl mod sw): only those FMAs are emitted;
 *          with stride sh along y, one dispatch per class of rows runs only the kernel rows that
 *          reach them (rowClasses)
 *   wgrad  rows = out channels, an invocation owns CB in-channels × one kernel row × all KW taps; the
 *          reduction runs over chunks of 4 output pixels, whose dy values are broadcast as vec4s
 * No workgroup memory, no barriers, no integer division inside the loops. Lanes step by 4 or 8
 * (`lanes`, at most the adapter's minimum subgroup size), so any subgroup size of 4+ computes the
 * same result; a workgroup is 8 invocations (one SIMD vector on lavapipe).
 */
export type WindowMode = 'fwd' | 'dgrad' | 'wgrad';

export interface WindowPlan {
  mode: WindowMode;
  /** Rows (channels) per workgroup. */
  tm: number;
  /** fwd / dgrad: consecutive pixels per invocation (unused by wgrad, whose chunks are 4 pixels). */
  tn: number;
  /** wgrad: in-channels per invocation. */
  cb: number;
  kw: number;
  sw: number;
  dw: number;
  /** dgrad: the left padding mod sw (which pixel / tap pairs meet an output column); 0 otherwise. */
  plr: number;
  /** Lanes sharing A per broadcast step: 4 or 8, at most the adapter's minimum subgroup size. */
  lanes: 4 | 8;
  /** wgrad: wo % 4 == 0, so a chunk of 4 pixels lies in one image row and shares one window. */
  aligned: boolean;
  /** A's rows (fwd: weights; wgrad: dy planes) and offset are multiples of 4 floats: vec4 loads (dgrad: never). */
  vecA: boolean;
  /**
   * fwd: a bias per out channel is added. fwd / dgrad kernels serve every epilogue: bias and addend
   * are always bound (stand-ins where absent) and the uniforms' `flags` (EPILOGUE_*) say which to
   * add, the bias in the store (0 without its flag), the addend in a rolled pass over the stored
   * tile. Each epilogue was its own kernel, and with the addend unrolled into the store LLVM took
   * twice as long to compile it on lavapipe (~70 s against 35-38 s, bench/results/compile-time-s25.md).
   */
  bias: boolean;
  /** wgrad: also Σ dy per out channel after the weight gradient (the bias gradient, Conv2dAttrs.biasGrad). */
  rowSums: boolean;
  /** A is stored as float16 (fwd / dgrad weights: read in place through in1_at / in1v_at4). */
  aF16?: boolean;
  /** The bias is stored as float16. */
  biasF16?: boolean;
  /** wgrad: below this many workgroups the reduction is split (partials summed by one more dispatch). */
  splitBelow: number;
  /**
   * fwd / dgrad: a tensor of the output's shape is added after the store, read at off3 + b·as0 +
   * channel·as1 + apix·pixel (any image and channel strides; pixels contiguous, or broadcast: apix 0).
   */
  addend?: boolean;
  /**
   * fwd / dgrad: results go out as vec4s (the output rows are whole vec4s: width and tn multiples of
   * 4; lavapipe stores per lane in a loop over the lanes, so four scalar stores cost about four times
   * one vec4 store).
   */
  vecOut?: boolean;
}

/** fwd and dgrad kernels choose their epilogue at run time (WindowPlan.bias); wgrad has none. */
function runtimeEpilogue(p: Pick<WindowPlan, 'mode'>): boolean {
  return p.mode !== 'wgrad';
}

/** Which conv operands are stored as float16 (issue 16): A (the weights of fwd / dgrad) and the bias. */
export interface ConvF16 {
  a?: boolean;
  bias?: boolean;
}

const WG = 8;

const U_FIELDS = [
  'M', 'tiles', 'tpr', 'groups', 'n', 'c', 'h', 'w', 'k', 'ho', 'wo', 'kh', 'sh', 'dh', 'pt', 'pl',
  'cg', 'kg', 'hw', 'howo', 'KR', 'KRp', 'NKR', 'off0', 'off1', 'off2', 'kChunk', 'T', 'G4', 'stepQ', 'stepR',
  'dhq', 'dhr', 'khkw', 'hc', 'iyf', 'iys', 'rq0', 'rr0', 'wkk', 'r0', 'rt', 'lq', 'lr', 'off3', 'as0', 'as1', 'apix', 'dyb', 'flags',
] as const;
type UName = (typeof U_FIELDS)[number];

const rep = (n: number, f: (i: number) => string, sep = '\n  '): string => Array.from({ length: n }, (_, i) => f(i)).join(sep);

/** Sorted distinct offsets of `count` positions stepping `step` combined with kw taps stepping `tap`. */
function windowOffsets(count: number, step: number, kw: number, tap: number): { q: number[]; at: (j: number, s: number) => number } {
  const set = new Set<number>();
  for (let j = 0; j < count; j++) for (let s = 0; s < kw; s++) set.add(j * step + s * tap);
  const q = [...set].sort((a, b) => a - b);
  const index = new Map(q.map((v, i) => [v, i]));
  return { q, at: (j, s) => index.get(j * step + s * tap)! };
}

/**
 * dgrad's window: input pixel ix0 + j (ix0 a multiple of sw) gets tap s from dy column
 * (ix0 + j + pl − s·dw) / sw when that divides; with pl = sw·plq + plr that is column
 * ix0/sw + plq + (j + plr − s·dw)/sw. `at` gives the index into `q` of that offset, −1 where the
 * tap falls between strided outputs. Stride 1 gives windowOffsets(count, 1, kw, −dw).
 */
function dgradOffsets(count: number, sw: number, plr: number, kw: number, dw: number): { q: number[]; at: (j: number, s: number) => number } {
  const off = (j: number, s: number): number | null => {
    const d = j + plr - s * dw;
    return ((d % sw) + sw) % sw === 0 ? d / sw : null;
  };
  const set = new Set<number>();
  for (let j = 0; j < count; j++) for (let s = 0; s < kw; s++) {
    const o = off(j, s);
    if (o !== null) set.add(o);
  }
  const q = [...set].sort((a, b) => a - b);
  const index = new Map(q.map((v, i) => [v, i]));
  return {
    q,
    at: (j, s) => {
      const o = off(j, s);
      return o === null ? -1 : index.get(o)!;
    },
  };
}

/** Kernel rows per lane and A step: 1x1 and 1x2 kernels pack 4 resp. 2 kernel rows into one vector. */

function header(p: WindowPlan): string {
  const rt = runtimeEpilogue(p);
  const binds = ['in0', p.vecA ? 'in1v' : 'in1', ...(rt ? ['bias', 'addend'] : [])];
  return `enable subgroups;
@group(0) @binding(0) var<storage, read> in0: array<f32>;
${p.vecA ? readBindingVec4(1, 'in1v', !!p.aF16) : readBinding(1, 'in1', !!p.aF16)}
${rt ? readBinding(2, 'bias', !!p.biasF16) : ''}
${rt ? `@group(0) @binding(3) var<storage, read> addend: array<f32>;` : ''}
@group(0) @binding(${binds.length}) var<storage, read_write> out: array<${p.vecOut ? 'vec4<f32>' : 'f32'}>;
struct U { ${U_FIELDS.map((f) => `${f}: u32`).join(', ')} };
@group(0) @binding(${binds.length + 1}) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) sgl: u32) {
  let lane = sgl & ${p.lanes - 1}u;`;
}

/**
 * fwd and dgrad: an invocation owns TN consecutive pixels of one output row, TM rows per workgroup.
 * The reduction runs over kernel rows (fwd: (ci, r); dgrad: (o, r)) in steps of `lanes`: a step's
 * lanes·KW weights of an output row are S/4 vec4s, lane l loads the l-th for every row (fwd: they
 * are contiguous, runWindow pads rows when needed; dgrad: its 4 floats are gathered from the weights
 * [k, cg, kh, kw], which measured as fast as vec4 loads of a transposed copy), every lane loads the input windows of the step's kernel
 * rows, then row by row the vec4s are broadcast and FMAs run into that row's TN accumulators, which
 * stay in registers for the whole step (the order matmul's subgroup kernel found fastest).
 * Measured on lavapipe (2 cores): weights as scalar loads cost half the time, as vec4 loads
 * plus vec4 broadcasts little; the input windows ~30%. Packing several 1x1 kernel rows per lane
 * (to fill the lanes) made LLVM take 40 s to compile one kernel, so a step is `lanes` kernel rows.
 */
function pixelWgsl(p: WindowPlan): string {
  const { tm, tn, kw } = p;
  const W = p.lanes;
  const fwd = p.mode === 'fwd';
  // dgrad reads the weights in their own layout (gathers, below)
  const wOrig = !fwd;
  const kpl = 1;
  const win = fwd ? windowOffsets(tn, p.sw, kw, p.dw) : dgradOffsets(tn, p.sw, p.plr, kw, p.dw);
  const { q } = win;
  const steps = W * kpl;
  // pixel geometry of this invocation's tile; `rb` below is the signed address of window offset 0
  const setup = fwd
    ? `let oxt = tt % u.tpr; let rowi = tt / u.tpr; let oy = rowi % u.ho; let b = rowi / u.ho;
  let ox0 = oxt * ${tn}u;
  let xb = i32(u.off0 + (b * u.c + g * u.cg) * u.hw);
  let iy0 = i32(oy * u.sh) - i32(u.pt);
  let ix0 = i32(ox0 * ${p.sw}u) - i32(u.pl);
  ${rep(q.length, (t) => `let okx${t} = u32(ix0 + ${q[t]}) < u.w;`)}
  ${rep(tn, (j) => `let okj${j} = okt && ox0 + ${j}u < u.wo;`)}
  let ob0 = (b * u.k + g * u.kg) * u.howo + oy * u.wo + ox0;
  let ab0 = u.off3 + b * u.as0 + g * u.kg * u.as1 + u.apix * (oy * u.wo + ox0);
  var coff = 0; var kr = 0u; var iy = iy0;`
    : `let oxt = tt % u.tpr; let rowi = tt / u.tpr; let iy = u.iyf + u.iys * (rowi % u.hc); let b = rowi / u.hc;
  let ix0 = oxt * ${tn}u;
  let xb = i32(u.off0 + b * u.dyb + g * u.kg * u.howo);
  // ty = iy + pt − r·dh = oy·sh when the tap hits an output row: (qy, ry) is ty at r = 0 by sh
  let ty0 = iy + u.pt; let qy = i32(ty0 / u.sh); let ry = ty0 % u.sh;
  // dy column of window offset 0: ix0 / sw + (pl − plr) / sw
  let ixw = i32(oxt * ${tn / p.sw}u + (u.pl - ${p.plr}u) / ${p.sw}u);
  ${rep(q.length, (t) => `let okx${t} = u32(ixw + ${q[t]}) < u.wo;`)}
  ${rep(tn, (j) => `let okj${j} = okt && ix0 + ${j}u < u.w;`)}
  let ob0 = (b * u.c + g * u.cg) * u.hw + iy * u.w + ix0;
  let ab0 = u.off3 + b * u.as0 + g * u.cg * u.as1 + u.apix * (iy * u.w + ix0);
  // (rq, rr) = r·dh as quotient and remainder by sh (r runs over the row class's kernel rows)
  let rq0 = i32(u.rq0);
  var coff = 0; var kr = 0u; var rq = rq0; var rr = u.rr0;`;
  // a step's S = lanes·KPL·KW values of a row are S/4 vec4s, lane l holding the l-th
  const S = steps * kw;
  // dgrad: element e = 4·lane + c of a step is kernel row k0 + e / KW of the class, tap e % KW; the
  // lane's (out channel, class kernel row) of it advance by lanes / khc per step (no division in the loop)
  const origSetup = wOrig
    ? rep(4, (c) => `let we${c} = lane * 4u + ${c}u; let ws${c} = we${c} % ${kw}u; let wd${c} = we${c} / ${kw}u;
  var wo${c} = wd${c} / u.kh; var wr${c} = wd${c} % u.kh;`)
    : '';
  const origStep = wOrig
    ? `${rep(4, (c) => `let okw${c} = we${c} < ${S}u && wo${c} < u.kg;
    let wa${c} = u.off1 + (g * u.kg + min(wo${c}, u.kg - 1u)) * u.cg * u.wkk + (u.r0 + wr${c} * u.rt) * ${kw}u + ws${c};
    wr${c} += u.lr; wo${c} += u.lq; if (wr${c} >= u.kh) { wr${c} -= u.kh; wo${c}++; }`, '\n    ')}`
    : '';
  const aLoad = (i: number): string => {
    // dgrad: wa·c is in bounds for every lane (out channel clamped), okw zeroes what lies past the step
    if (wOrig) {
      const ci = `min(m0 + ${i}u, u.M - 1u) * u.wkk`;
      return `let a${i} = vec4<f32>(${rep(4, (c) => `select(0.0, in1_at(wa${c} + ${ci}), okw${c})`, ', ')});`;
    }
    // rows padded to KRp (a multiple of 4, zeros past KR) by runWindow
    const row = `u.off1 + (g * u.M + min(m0 + ${i}u, u.M - 1u)) * u.KRp`;
    return `let a${i} = select(vec4<f32>(0.0), in1v_at4((${row} + min(ao, u.KRp - 4u)) / 4u), ao < u.KRp);`;
  };
  // the input window of kernel row (ll, t) of this step, then the uniform counters move on
  const winLoad = (ll: number, t: number): string => {
    const id = `${ll}_${t}`;
    const k = ll * kpl + t;
    const head = fwd
      ? `let oky${id} = k0 + ${k}u < u.NKR && u32(iy) < u.h;
    let rb${id} = xb + coff + iy * i32(u.w) + ix0;`
      : `let oyv${id} = qy - rq;
    let oky${id} = k0 + ${k}u < u.NKR && ry == rr && u32(oyv${id}) < u.ho;
    let rb${id} = xb + coff + oyv${id} * i32(u.wo) + ixw;`;
    const loads = rep(q.length, (t2) => `let x${id}_${t2} = select(0.0, in0[select(0u, u32(rb${id} + ${q[t2]}), oky${id} && okx${t2})], oky${id} && okx${t2});`, '\n    ');
    const next = fwd
      ? `kr++; iy += i32(u.dh); if (kr == u.kh) { kr = 0u; iy = iy0; coff += i32(u.hw); }`
      : `kr++; rq += i32(u.dhq); rr += u.dhr; if (rr >= u.sh) { rr -= u.sh; rq++; }
    if (kr == u.kh) { kr = 0u; rq = rq0; rr = u.rr0; coff += i32(u.howo); }`;
    return `${head}\n    ${loads}\n    ${next}`;
  };
  // element e of the step is tap e % KW of kernel row e / KW = (ll, t)
  const rowFmas = (i: number): string =>
    rep(S / 4, (v) => {
      const body: string[] = [];
      for (let cpt = 0; cpt < 4; cpt++) {
        const e = 4 * v + cpt;
        const kk = Math.floor(e / kw), s = e % kw;
        const ll = Math.floor(kk / kpl), t = kk % kpl;
        for (let j = 0; j < tn; j++) {
          const at = win.at(j, s);
          if (at >= 0) body.push(`c${i}_${j} = fma(bv[${cpt}], x${ll}_${t}_${at}, c${i}_${j});`);
        }
      }
      return `{ let bv = subgroupBroadcast(a${i}, ${v}u);\n      ${body.join(' ')} }`;
    }, '\n    ');
  const outRow = fwd ? 'u.howo' : 'u.hw';
  // the bias goes into the store, 0 where the flags say there is none
  const store = rep(tm, (i) => `{
    let m = m0 + ${i}u;
    if (m < u.M) {
      let ob = ob0 + m * ${outRow};
      let bs = select(0.0, bias_at(u.off2 + g * u.kg + m), (u.flags & ${EPILOGUE_BIAS}u) != 0u);
      ${
        // vecOut: four pixels per store (all in or all out of the row: its width is a multiple of 4)
        p.vecOut
          ? rep(tn / 4, (v) => `if (okj${4 * v}) { out[(ob + ${4 * v}u) / 4u] = vec4<f32>(${rep(4, (c) => `c${i}_${4 * v + c}`, ', ')}) + bs; }`, '\n      ')
          : rep(tn, (j) => `if (okj${j}) { out[ob + ${j}u] = c${i}_${j} + bs; }`, '\n      ')
      }
    }
  }`);
  // the addend: the stored tile is re-read row by row (a rolled loop) and the addend added, after the
  // bias as in a fused store (the same invocation wrote these elements: no barrier needed). Unrolled
  // into the store, the addend doubled LLVM's compile time on lavapipe.
  const epilogue = `
  if ((u.flags & ${EPILOGUE_ADDEND}u) != 0u) {
    for (var i = 0u; i < ${tm}u; i++) {
      let m = m0 + i;
      if (m >= u.M) { break; }
      let ob = ob0 + m * ${outRow};
      ${
        p.vecOut
          ? rep(tn / 4, (v) => `if (okj${4 * v}) { out[(ob + ${4 * v}u) / 4u] += vec4<f32>(${rep(4, (c) => `addend[ab0 + m * u.as1 + u.apix * ${4 * v + c}u]`, ', ')}); }`, '\n      ')
          : rep(tn, (j) => `if (okj${j}) { out[ob + ${j}u] += addend[ab0 + m * u.as1 + u.apix * ${j}u]; }`, '\n      ')
      }
    }
  }`;
  return `${header(p)}
  let g = wid.z;
  let m0 = wid.y * ${tm}u;
  let t = wid.x * ${WG}u + lid.x;
  let okt = t < u.tiles;
  let tt = min(t, u.tiles - 1u);
  ${setup}
  ${rep(tm, (i) => rep(tn, (j) => `var c${i}_${j} = 0.0;`, ' '))}
  ${origSetup}
  for (var k0 = 0u; k0 < u.NKR; k0 += ${steps}u) {
    let ao = k0 * ${kw}u + lane * 4u;
    ${origStep}
    ${rep(tm, aLoad, '\n    ')}
    ${rep(W, (ll) => rep(kpl, (t) => winLoad(ll, t), '\n    '), '\n    ')}
    ${rep(tm, rowFmas, '\n    ')}
  }
  ${store}${epilogue}
}`;
}

/**
 * wgrad: rows = out channels; an invocation owns CB in-channels of one kernel row r with all KW
 * taps. The reduction runs over chunks of 4 consecutive output pixels of one image (lane l loads
 * the 4 dy values of chunk k0 + l for every row, as one vec4 broadcast later), and each chunk's
 * input values are loaded once per lane (one shared window when the chunk lies in one image row).
 */
function weightWgsl(p: WindowPlan): string {
  const { tm, kw, cb } = p;
  const W = p.lanes;
  const ncol = cb * kw;
  const win = windowOffsets(4, p.sw, kw, p.dw);
  const xName = (ll: number, cc: number, uu: number, s: number): string =>
    p.aligned ? `x${ll}_${cc}_${win.at(uu, s)}` : `x${ll}_${cc}_${uu}_${s}`;
  const aLoad = (i: number): string =>
    p.vecA
      ? `let a${i} = select(vec4<f32>(0.0), in1v_at4(select(0u, (dyr${i} + db) / 4u, okl)), okl);`
      : `let a${i} = vec4<f32>(${rep(4, (c) => `select(0.0, in1_at(select(0u, dyr${i} + db + ${c}u, okp${c})), okp${c})`, ', ')});`;
  const chunk = (ll: number): string => {
    const head = `let okg${ll} = k0 + ${ll}u < kEnd;`;
    if (p.aligned) {
      const loads = rep(cb, (cc) => rep(win.q.length, (t) => `let x${ll}_${cc}_${t} = select(0.0, in0[select(0u, u32(rb${ll}_${cc} + ${win.q[t]}), oky${ll} && okx${ll}_${t})], oky${ll} && okx${ll}_${t});`, '\n    '), '\n    ');
      return `${head}
    let iy${ll} = i32(poy * u.sh) + ry; let oky${ll} = okg${ll} && u32(iy${ll}) < u.h;
    let xo${ll} = i32(pox * ${p.sw}u) - i32(u.pl);
    ${rep(win.q.length, (t) => `let okx${ll}_${t} = u32(xo${ll} + ${win.q[t]}) < u.w;`, ' ')}
    ${rep(cb, (cc) => `let rb${ll}_${cc} = xr${cc} + i32(ub * u.c * u.hw) + iy${ll} * i32(u.w) + xo${ll};`, ' ')}
    ${loads}
    ug++; pox += 4u; if (pox >= u.wo) { pox = 0u; poy++; }
    if (ug == u.G4) { ug = 0u; ub++; poy = 0u; pox = 0u; }`;
    }
    // chunks may span image rows: each pixel has its own row and window
    const px: string[] = [];
    for (let uu = 0; uu < 4; uu++) {
      px.push(uu === 0 ? `var py = poy; var pxx = pox;` : `pxx++; if (pxx >= u.wo) { pxx = 0u; py++; }`);
      px.push(`{ let iy = i32(py * u.sh) + ry; let oky = okg${ll} && u32(iy) < u.h; let xo = i32(pxx * ${p.sw}u) - i32(u.pl);`);
      for (let s = 0; s < kw; s++) {
        px.push(`  let okx${s} = oky && u32(xo + ${s * p.dw}) < u.w;`);
        for (let cc = 0; cc < cb; cc++) {
          px.push(`  x${ll}_${cc}_${uu}_${s} = select(0.0, in0[select(0u, u32(xr${cc} + i32(ub * u.c * u.hw) + iy * i32(u.w) + xo + ${s * p.dw}), okx${s})], okx${s});`);
        }
      }
      px.push('}');
    }
    return `${head}
    ${rep(cb, (cc) => rep(4 * kw, (e) => `var x${ll}_${cc}_${Math.floor(e / kw)}_${e % kw}: f32;`, ' '), ' ')}
    { ${px.join('\n      ')} }
    ug++; pox += 4u; loop { if (pox < u.wo) { break; } pox -= u.wo; poy++; }
    if (ug == u.G4) { ug = 0u; ub++; poy = 0u; pox = 0u; }`;
  };
  const rowFmas = (i: number): string =>
    rep(W, (ll) => {
      const body: string[] = [];
      for (let uu = 0; uu < 4; uu++) for (let cc = 0; cc < cb; cc++) for (let s = 0; s < kw; s++) {
        const col = cc * kw + s;
        body.push(`c${i}_${col} = fma(bv[${uu}], ${xName(ll, cc, uu, s)}, c${i}_${col});`);
      }
      return `{ let bv = subgroupBroadcast(a${i}, ${ll}u);\n      ${body.join(' ')} }`;
    }, '\n    ');
  // row sums: lane l summed the dy chunks it loaded (lanes past `lanes` repeat them); the first
  // invocation of the first tile column writes them after the weight gradient
  const rs = p.rowSums;
  const PS = `(u.k * u.KR${rs ? ' + u.k' : ''})`;
  const store = rep(tm, (i) => `{
    let m = m0 + ${i}u;
    ${rs ? `let bsum${i} = subgroupAdd(select(0.0, dot(blane${i}, vec4<f32>(1.0)), sgl < ${W}u));` : ''}
    if (m < u.M && okt) {
      let ob = part * ${PS} + (g * u.kg + m) * u.KR;
      ${rep(cb, (cc) => `if (okc${cc}) { ${rep(kw, (s) => `out[ob + oc${cc} + ${s}u] = c${i}_${cc * kw + s};`, ' ')} }`, '\n      ')}
      ${rs ? `if (t == 0u) { out[part * ${PS} + u.k * u.KR + g * u.kg + m] = bsum${i}; }` : ''}
    }
  }`);
  return `${header(p)}
  let g = wid.z % u.groups;
  let part = wid.z / u.groups;
  let m0 = wid.y * ${tm}u;
  let t = wid.x * ${WG}u + lid.x;
  let okt = t < u.tiles;
  let tt = min(t, u.tiles - 1u);
  // tile = (channel block, kernel row)
  let r = tt % u.kh; let cbase = (tt / u.kh) * ${cb}u;
  ${rep(cb, (cc) => `let okc${cc} = cbase + ${cc}u < u.cg; let ci${cc} = min(cbase + ${cc}u, u.cg - 1u);
  let oc${cc} = (ci${cc} * u.kh + r) * ${kw}u; let xr${cc} = i32(u.off0 + (g * u.cg + ci${cc}) * u.hw);`)}
  let ry = i32(r * u.dh) - i32(u.pt);
  ${rep(tm, (i) => `let dyr${i} = u.off1 + (g * u.kg + min(m0 + ${i}u, u.M - 1u)) * u.howo;`)}
  ${rep(tm, (i) => rep(ncol, (j) => `var c${i}_${j} = 0.0;`, ' '))}${rs ? `\n  ${rep(tm, (i) => `var blane${i} = vec4<f32>(0.0);`, ' ')}` : ''}
  let kBegin = part * u.kChunk;
  let kEnd = min(kBegin + u.kChunk, u.T);
  // this lane's chunk (lb, lg) and the uniform walk (ub, ug) with its first pixel (poy, pox)
  var lb = (kBegin + lane) / u.G4; var lg = (kBegin + lane) % u.G4;
  var ub = kBegin / u.G4; var ug = kBegin % u.G4; var poy = (4u * ug) / u.wo; var pox = (4u * ug) % u.wo;
  for (var k0 = kBegin; k0 < kEnd; k0 += ${W}u) {
    let okl = k0 + lane < kEnd;
    let db = lb * u.dyb + 4u * lg;
    ${rep(4, (c) => `let okp${c} = okl && 4u * lg + ${c}u < u.howo;`, ' ')}
    ${rep(tm, aLoad, '\n    ')}${rs ? `\n    ${rep(tm, (i) => `blane${i} += a${i};`, ' ')}` : ''}
    lg += u.stepR; lb += u.stepQ; if (lg >= u.G4) { lg -= u.G4; lb++; }
    ${rep(W, chunk, '\n    ')}
    ${rep(tm, rowFmas, '\n    ')}
  }
  ${store}
}`;
}

export function windowWgsl(p: WindowPlan): string {
  return p.mode === 'wgrad' ? weightWgsl(p) : pixelWgsl(p);
}

/**
 * Whether the window kernels cover this problem and are expected to beat the implicit GEMM there
 * (measured on lavapipe, docs in bench/results/latest-conv.md): kernels up to 4 wide; dgrad takes
 * strides up to 4 along x (3x3 stride 2: 4-5x the GEMM's speed, which runs every tap of every pixel
 * where the window kernel runs only those that hit an output), but not big weights on few pixels
 * (e.g. 512 channels at 4x4 ran no faster, measured when it read a transposed copy); 1x1 forward / input
 * gradients share nothing between taps and ran ~15% slower at stride 1 (1x1 stride 2 input gradients
 * skip 3/4 of the pixels' taps: ~2x faster); fewer than 4 steps of kernel rows that leave lanes idle
 * (3 input channels, 3x3) ran ~20% slower. The weight gradient gains everywhere (1.1-3.7x).
 */
export function windowApplies(mode: WindowMode, a: Conv2dAttrs, lanes: 4 | 8): boolean {
  if (a.kw > 4) return false;
  if (mode === 'wgrad') return true;
  if (a.kw === 1 && (mode === 'fwd' || a.strideW === 1)) return false;
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const nkr = (mode === 'fwd' ? cg : kg) * a.kh;
  if (nkr % lanes !== 0 && nkr < 4 * lanes) return false;
  if (mode === 'dgrad') {
    if (a.strideW > 4) return false;
    if (a.k * cg * a.kh * a.kw > 65536 && a.n * a.h * a.w < 256) return false;
  }
  return true;
}

export interface WindowShape {
  tm?: number;
  tn?: number;
  cb?: number;
  splitBelow?: number;
}

let tilesOverride: WindowShape = {};
/** Overrides the tile sizes the plans choose (measurements); {} restores them. */
export function setConvWindowTiles(o: WindowShape): void {
  tilesOverride = { ...o };
}

/** Tile sizes for a problem. */
export function windowPlan(mode: WindowMode, a: Conv2dAttrs, bias: boolean, lanes: 4 | 8, over: WindowShape = {}): WindowPlan {
  const o = { ...tilesOverride, ...over };
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const M = mode === 'dgrad' ? cg : kg;
  const tm = o.tm ?? (M <= 4 ? 4 : M <= 8 ? 8 : M <= 16 ? 16 : 32);
  const width = mode === 'dgrad' ? a.w : a.wo;
  let tn = o.tn ?? (width <= 4 ? 4 : 8);
  // dgrad tiles start at multiples of the stride (dgradOffsets)
  if (mode === 'dgrad' && tn % a.strideW !== 0) tn = a.strideW * Math.max(1, Math.floor(tn / a.strideW));
  const cb = o.cb ?? (a.kw === 1 ? 8 : a.kw === 2 ? 4 : 2);
  // fwd reads weights as vec4 rows (runWindow pads them when needed), dgrad gathers them; wgrad reads dy planes
  const vecA = mode === 'wgrad' ? (a.ho * a.wo) % 4 === 0 : mode === 'fwd';
  const plr = mode === 'dgrad' ? a.padLeft % a.strideW : 0;
  const rowSums = mode === 'wgrad' && !!a.biasGrad;
  return { mode, tm, tn, cb, kw: a.kw, sw: a.strideW, dw: a.dilW, plr, lanes, aligned: a.wo % 4 === 0, vecA, bias, rowSums, splitBelow: o.splitBelow ?? 64 };
}

/**
 * dgrad's input rows by the kernel rows that reach them: with stride sh along y, row iy receives dy
 * rows only from the kernel rows r with r·dh ≡ (iy + pt) (mod sh), which are r0 + i·t
 * (t = sh / gcd(dh, sh), i < khc). A row class (rows iyf + iys·i, i < hc) is one dispatch that runs
 * only those kernel rows, so taps that fall between strided outputs cost nothing (khc = 0: the
 * class's rows are zero). Stride 1: one class of every row and kernel row.
 */
export interface RowClass {
  iyf: number;
  iys: number;
  hc: number;
  r0: number;
  khc: number;
  t: number;
}

export function rowClasses(a: Conv2dAttrs): RowClass[] {
  const sh = a.strideH;
  if (sh === 1) return [{ iyf: 0, iys: 1, hc: a.h, r0: 0, khc: a.kh, t: 1 }];
  const out: RowClass[] = [];
  for (let rho = 0; rho < sh; rho++) {
    const iyf = (((rho - a.padTop) % sh) + sh) % sh;
    if (iyf >= a.h) continue;
    const rs: number[] = [];
    for (let r = 0; r < a.kh; r++) if ((r * a.dilH) % sh === rho) rs.push(r);
    out.push({ iyf, iys: sh, hc: Math.ceil((a.h - iyf) / sh), r0: rs[0] ?? 0, khc: rs.length, t: rs.length > 1 ? rs[1]! - rs[0]! : 1 });
  }
  return out;
}

/** dgrad: one dispatch per row class into one output; the kernel reads the weights where they are. */
function runWindowDgrad(be: WebGPUBackend, p: WindowPlan, a: Conv2dAttrs, dy: View, w: View, addend: View | null): GpuStorage {
  const target = be.alloc('float32', a.n * a.c * a.h * a.w);
  try {
    for (const c of rowClasses(a)) {
      const d = windowDispatch(p, a, { off0: dy.offset, off1: w.offset, off2: 0, dyb: dy.strides[0]!, ...addendOffsets(addend) }, c);
      // no bias; dy stands in for it (and for an absent addend)
      be.rt.dispatch({ name: 'conv2d_dgrad', key: d.key, wgsl: d.wgsl, buffers: [bufferOf(dy), bufferOf(w), bufferOf(dy), bufferOf(addend ?? dy), target.buffer], uniforms: d.uniforms, workgroups: d.workgroups });
    }
  } catch (e) {
    target.release();
    throw e;
  }
  return target;
}

/** Runs one window kernel; the output storage (wgrad partial sums are added up here). */
export function runWindow(be: WebGPUBackend, plan: WindowPlan, a: Conv2dAttrs, in0: View, in1In: View, bias: View | null, addend: View | null = null): GpuStorage {
  if (addend && plan.mode === 'wgrad') throw new Error('conv2d: the weight gradient takes no addend');
  const cg = a.c / a.groups;
  let p = plan;
  let in1 = in1In;
  let owned: GpuStorage | null = null;
  const khkw = a.kh * a.kw;
  if (p.mode === 'dgrad') return runWindowDgrad(be, { ...p, aF16: in1.dtype === 'float16', addend: !!addend, vecOut: vecStore(p, a.w) }, a, in0, in1, addend);
  if (p.mode === 'fwd') {
    // A rows: the weights [g·kg, cg·kh·kw], copied to pad rows to a multiple of 4 floats (vec4
    // loads) with zeros, or to realign the offset.
    const [rows, KR] = [a.k, cg * khkw];
    const KRp = Math.ceil(KR / 4) * 4;
    if (KRp !== KR || in1.offset % 4 !== 0) {
      const buf = be.alloc('float32', rows * KRp);
      owned = buf;
      const full = (shape: number[], strides: number[]): View => ({ storage: buf, shape, strides, offset: 0, dtype: 'float32' });
      if (KRp !== KR) be.run('elementwise', [], { op: 'fill', params: [0], shape: [rows * KRp], out: full([rows * KRp], [1]) });
      const shape = [rows, KR];
      // an f16 weight needing this copy is widened to f32 here (the f16 boundary casts it): transient
      const src: View = { storage: in1.storage, shape, offset: in1.offset, dtype: in1.dtype, strides: [KR, 1] };
      be.run('elementwise', [src], { op: 'copy', params: [], shape, out: full(shape, [KRp, 1]) });
      in1 = { storage: buf, shape: [rows * KRp], strides: [1], offset: 0, dtype: 'float32' };
    }
  } else if (p.vecA && (in1.offset % 4 !== 0 || in1.strides[0]! % 4 !== 0)) {
    // wgrad reads dy planes as vec4s: its offset and image stride must be multiples of 4
    p = { ...p, vecA: false };
  }
  p = { ...p, aF16: in1.dtype === 'float16', biasF16: bias?.dtype === 'float16', addend: !!addend, ...(p.mode === 'fwd' ? { vecOut: vecStore(p, a.wo) } : {}) };
  try {
    return dispatchWindow(be, p, a, in0, in1, bias, addend);
  } finally {
    owned?.release();
  }
}

/** fwd / dgrad: whether the results go out as vec4s; `width` is the output row's. */
function vecStore(p: WindowPlan, width: number): boolean {
  return width % 4 === 0 && p.tn % 4 === 0;
}

/**
 * Whether the kernels' store reads this addend as it is: 4-D with its pixels contiguous ([.., .., w, 1])
 * or broadcast ([.., .., 0, 0], e.g. a per-image, per-channel term expanded), any image and channel strides.
 */
export function addendInStore(v: View): boolean {
  if (v.shape.length !== 4 || v.dtype !== 'float32') return false;
  const [, , h, w] = v.shape as [number, number, number, number];
  const [, , sh, sw] = v.strides as [number, number, number, number];
  const contiguousPixels = (w === 1 || sw === 1) && (h === 1 || sh === w);
  const broadcastPixels = (w === 1 || sw === 0) && (h === 1 || sh === 0);
  return contiguousPixels || broadcastPixels;
}

/** The uniforms that locate an addend (addendInStore) for the kernels' store. */
export function addendOffsets(v: View | null): Pick<ConvOffsets, 'off3' | 'as0' | 'as1' | 'apix'> {
  if (!v) return {};
  const [h, w] = [v.shape[2]!, v.shape[3]!];
  const broadcast = (w === 1 || v.strides[3] === 0) && (h === 1 || v.strides[2] === 0) && h * w > 1;
  return { off3: v.offset, as0: v.strides[0]!, as1: v.strides[1]!, apix: broadcast ? 0 : 1 };
}

/** Element offsets of the operands (x or dy, weights or dy, bias). */
export interface ConvOffsets {
  off0: number;
  off1: number;
  off2: number;
  /** dgrad / wgrad: dy's image stride (each image's [k, ho, wo] contiguous); k·ho·wo by default. */
  dyb?: number;
  /** The addend's offset and strides (fwd / dgrad with an addend; see WindowPlan.addend). */
  off3?: number;
  as0?: number;
  as1?: number;
  apix?: number;
}

/** One conv dispatch, with how many partial results it writes (summed afterwards when > 1). */
export interface ConvDispatch {
  key: string;
  wgsl: () => string;
  uniforms: Uint32Array;
  workgroups: [number, number, number];
  splits: number;
  outSize: number;
  /** Bias and addend are always bound (in0 stands in for an absent one); the uniforms' flags choose. */
  runtimeEpilogue?: boolean;
}

/**
 * The dispatch of a window plan (A already in the layout the plan reads: fwd wants rows padded to
 * KRp; dgrad, per row class `rc` (the whole problem by default), reads the weights as they are).
 */
export function windowDispatch(p: WindowPlan, a: Conv2dAttrs, offs: ConvOffsets, rc?: RowClass): ConvDispatch {
  const cg = a.c / a.groups, kg = a.k / a.groups;
  const hw = a.h * a.w, howo = a.ho * a.wo;
  const cls = rc ?? { iyf: 0, iys: 1, hc: a.h, r0: 0, khc: a.kh, t: 1 };
  // dgrad: the kernel rows of the class; fwd / wgrad: all of them
  const kh = p.mode === 'dgrad' ? cls.khc : a.kh;
  const khkw = kh * a.kw;
  const mode = p.mode;
  const M = mode === 'dgrad' ? cg : kg;
  const outSize = mode === 'fwd' ? a.n * a.k * howo : mode === 'dgrad' ? a.n * a.c * hw : a.k * cg * khkw + (p.rowSums ? a.k : 0);
  let tpr = 0, tiles: number;
  if (mode === 'fwd') tiles = a.n * a.ho * (tpr = Math.ceil(a.wo / p.tn));
  else if (mode === 'dgrad') tiles = a.n * cls.hc * (tpr = Math.ceil(a.w / p.tn));
  else tiles = Math.ceil(cg / p.cb) * a.kh;
  const tilesX = Math.ceil(tiles / WG);
  const rowTiles = Math.ceil(M / p.tm);
  // wgrad: chunks of 4 pixels; the reduction over n·G4 chunks is split when the output gives few workgroups
  const G4 = Math.ceil(howo / 4);
  const T = a.n * G4;
  let splits = 1;
  if (mode === 'wgrad') {
    const wgs = tilesX * rowTiles * a.groups;
    if (wgs < p.splitBelow) splits = Math.max(1, Math.min(Math.ceil((2 * p.splitBelow) / wgs), Math.floor(T / 64)));
  }
  const kChunk = Math.ceil(T / splits / p.lanes) * p.lanes;
  if (mode === 'wgrad') splits = Math.ceil(T / kChunk);
  if (tilesX > 65535) throw new RangeError(`conv2d: ${tiles} tiles exceed one dispatch (split the batch)`);
  // lanes advance their chunk ((b, g) by G4) per step
  const step = p.lanes;
  const vals: Record<UName, number> = {
    M, tiles, tpr, groups: a.groups, n: a.n, c: a.c, h: a.h, w: a.w, k: a.k, ho: a.ho, wo: a.wo, kh,
    sh: a.strideH, dh: a.dilH, pt: a.padTop, pl: a.padLeft, cg, kg, hw, howo,
    KR: mode === 'dgrad' ? kg * khkw : cg * khkw, KRp: Math.ceil((mode === 'dgrad' ? kg * khkw : cg * khkw) / 4) * 4, NKR: mode === 'fwd' ? cg * kh : kg * kh,
    off0: offs.off0, off1: offs.off1, off2: offs.off2, off3: offs.off3 ?? 0, as0: offs.as0 ?? 0, as1: offs.as1 ?? 0, apix: offs.apix ?? 0,
    dyb: offs.dyb ?? a.k * howo,
    kChunk, T, G4, stepQ: Math.floor(step / G4), stepR: step % G4,
    // dgrad: (rq, rr) = r·dh by sh from r = r0 in steps of t
    dhq: Math.floor((cls.t * a.dilH) / a.strideH), dhr: (cls.t * a.dilH) % a.strideH, khkw,
    hc: cls.hc, iyf: cls.iyf, iys: cls.iys, rq0: Math.floor((cls.r0 * a.dilH) / a.strideH), rr0: (cls.r0 * a.dilH) % a.strideH,
    // dgrad: the weights' own kh·kw, the class's first kernel row and step, lanes by khc
    wkk: a.kh * a.kw, r0: cls.r0, rt: cls.t, lq: kh > 0 ? Math.floor(p.lanes / kh) : 0, lr: kh > 0 ? p.lanes % kh : 0,
    flags: epilogueFlags(p.bias, false, !!p.addend),
  };
  // bias and addend are the uniforms' business, not the kernel's
  const rt = runtimeEpilogue(p);
  return {
    key: `conv2d:win:${mode}:${p.tm}:${p.tn}:${p.cb}:${p.kw}:${p.sw}:${p.dw}:${p.plr}:${p.lanes}:${p.aligned}:${p.vecA}:${p.rowSums}${p.vecOut ? ':vo' : ''}${f16Key(!!p.aF16, !!p.biasF16)}`,
    wgsl: () => windowWgsl(p),
    uniforms: new UniformWriter().u32(...U_FIELDS.map((f) => vals[f])).build(),
    workgroups: [tilesX, rowTiles, a.groups * splits],
    splits,
    outSize,
    runtimeEpilogue: rt,
  };
}

function dispatchWindow(be: WebGPUBackend, p: WindowPlan, a: Conv2dAttrs, in0: View, in1: View, bias: View | null, addend: View | null): GpuStorage {
  const dyb = p.mode === 'wgrad' ? in1.strides[0]! : undefined;
  return dispatchConv(be, `conv2d_${p.mode}`, windowDispatch(p, a, { off0: in0.offset, off1: in1.offset, off2: bias ? bias.offset : 0, ...(dyb !== undefined ? { dyb } : {}), ...addendOffsets(addend) }), in0, in1, bias, addend);
}

/** Runs a conv dispatch of either family; split-K partial outputs are summed into one. An addend (fwd / dgrad) is bound after the bias. */
export function dispatchConv(be: WebGPUBackend, name: string, d: ConvDispatch, in0: View, in1: View, bias: View | null, addend: View | null = null): GpuStorage {
  if (addend && d.splits > 1) throw new Error('conv2d: a split reduction takes no addend');
  const target = be.alloc('float32', d.outSize * d.splits);
  be.rt.dispatch({
    name,
    key: d.key,
    wgsl: d.wgsl,
    buffers: d.runtimeEpilogue
      ? [bufferOf(in0), bufferOf(in1), bufferOf(bias ?? in0), bufferOf(addend ?? in0), target.buffer]
      : [bufferOf(in0), bufferOf(in1), ...(bias ? [bufferOf(bias)] : []), ...(addend ? [bufferOf(addend)] : []), target.buffer],
    uniforms: d.uniforms,
    workgroups: d.workgroups,
  });
  if (d.splits > 1) {
    const summed = be.run('reduce', [{ storage: target, shape: [d.splits, d.outSize], strides: [d.outSize, 1], offset: 0, dtype: 'float32' }], {
      op: 'sum', outer: 1, size: d.splits, inner: d.outSize,
    }) as GpuStorage;
    target.release();
    return summed;
  }
  return target;
}
