import type { KernelFn, View } from '../../backend.js';
import { WebGPUBackend, UniformWriter, bufferOf, type GpuStorage } from '../../backends/webgpu/webgpu-backend.js';
import type { MatmulAttrs } from './index.js';
import { env } from '../../env.js';
import { matmulLayout, matmulUniformWords, matmulUniformBinding, epilogueFlags, MATMUL_UNIFORMS_WGSL, MATMUL_C_BASE_WGSL } from './layout.js';
import { subgroupMatmulWgsl, subgroupTile, subgroupLanesFor, type SubgroupLanes } from './webgpu-subgroup.js';
import { tiledMatmulWgsl, tiledWorkgroups } from './webgpu-tiled.js';
import { readBinding, f16Key } from '../cast/wgsl.js';
import { registerTunable, variantFor, setVariant, supportedVariants, tune, type TuneDispatch, type TuneResult } from '../../backends/webgpu/tuning.js';

/**
 * Three variants of one kernel, chosen per adapter by measurement (tuning.ts):
 * - 'subgroup': subgroup broadcasts, no workgroup memory (matmul-subgroup.ts), for lavapipe;
 * - 'tiled': workgroup-memory tiles (matmul-tiled.ts), for real GPUs;
 * - 'base': 4x4 outputs per invocation straight from storage, the universal fallback.
 * All read operands through the same uniform block (batch strides, 0 = broadcast; element offsets;
 * transposes folded into the index arithmetic) and write a contiguous [batch, m, n] output.
 */
export type MatmulVariant = 'base' | 'subgroup' | 'tiled';
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['base', 'subgroup', 'tiled'];

/** Bumped when a variant's kernel changes enough that cached tuning choices must be measured again. */
const TUNING_VERSION = 5; // 5: samples repeated until not submit-bound (fast GPUs); 4: subgroup variant sized by the adapter's subgroup size, results verified
const MAX_Z = 65535;

const TS = 4;
const WGX = 8, WGY = 8;


function baseWgsl(transA: boolean, transB: boolean, bias: boolean, addend: boolean, rowSums = false, bF16 = false, biasF16 = false, biasRows = false): string {
  const aIdx = transA ? 'kk * u.lda + row' : 'row * u.lda + kk';
  const bIdx = transB ? 'col * u.ldb + kk' : 'kk * u.ldb + col';
  return `
@group(0) @binding(0) var<storage, read> A: array<f32>;
${readBinding(1, 'B', bF16)}
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${MATMUL_UNIFORMS_WGSL}
${matmulUniformBinding(bias, addend, rowSums, biasF16)}
fn a_at(base: u32, row: u32, kk: u32) -> f32 { if (row >= u.m) { return 0.0; } return A[base + ${aIdx}]; }
fn b_at(base: u32, kk: u32, col: u32) -> f32 { if (col >= u.n) { return 0.0; } return B_at(base + ${bIdx}); }
@compute @workgroup_size(${WGX}, ${WGY}, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z + u.z0;
  let row0 = gid.y * ${TS}u;
  let col0 = gid.x * ${TS}u;
  if (row0 >= u.m || col0 >= u.n) { return; }
  let ab = u.aoff + (b / u.binner) * u.abs2 + (b % u.binner) * u.abs;
  let bb = u.boff + (b / u.binner) * u.bbs2 + (b % u.binner) * u.bbs;
  var acc: array<vec4<f32>, ${TS}>;${rowSums ? '\n  var rs = vec4<f32>(0.0);' : ''}
  for (var kk = 0u; kk < u.k; kk++) {
    let bv = vec4<f32>(b_at(bb, kk, col0), b_at(bb, kk, col0 + 1u), b_at(bb, kk, col0 + 2u), b_at(bb, kk, col0 + 3u));
    for (var i = 0u; i < ${TS}u; i++) {
      let av = a_at(ab, row0 + i, kk);
      acc[i] += av * bv;${rowSums ? '\n      rs[i] += av;' : ''}
    }
  }
  let bz = b;
  let cb = ${MATMUL_C_BASE_WGSL};${
    rowSums
      ? `
  if (col0 == 0u) {
    for (var i = 0u; i < ${TS}u; i++) { if (row0 + i < u.m) { E[u.eoff + b * u.m + row0 + i] = rs[i]; } }
  }`
      : ''
  }
  for (var i = 0u; i < ${TS}u; i++) {
    let r = row0 + i;
    if (r >= u.m) { break; }
    for (var j = 0u; j < ${TS}u; j++) {
      let ci = cb + r * u.ldc + col0 + j;
      if (col0 + j < u.n) { C[ci] = acc[i][j] * u.alpha${bias ? ` + bias_at(u.biasoff + ${biasRows ? 'r' : 'col0 + j'})` : ''}${addend ? ' + D[u.doff + ci]' : ''}; }
    }
  }
}`;
}

/** What one variant dispatches for a problem: pipeline key, WGSL and grid (z: batch). */
interface Plan {
  key: string;
  wgsl: () => string;
  grid: [number, number];
  /**
   * The kernel reads its epilogue from the uniforms' flags: the bias and addend bindings are always
   * there (A's buffer stands in for an absent one).
   */
  runtimeEpilogue: boolean;
}

interface Problem {
  /** Broadcast width of the subgroup variant on this adapter (unused by the others). */
  lanes: SubgroupLanes;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** B's offset and strides, and C's strides, are multiples of 4 (vec4 loads and stores possible). */
  bAligned: boolean;
  /** A bias [n] is added to every row. */
  bias: boolean;
  /** A tensor in C's layout is added (C = alpha · AB + bias + D). */
  addend: boolean;
  /** A's row sums are written to E (MatmulAttrs.rowSumsA). */
  rowSums?: boolean;
  /** B (a weight) is stored as float16 (read in place, f32 accumulation). */
  bF16?: boolean;
  /** The bias is stored as float16. */
  biasF16?: boolean;
  /** The bias is per row (bias[row]; MatmulAttrs.biasPerRow). */
  biasRows?: boolean;
  /** Subgroup variant: the product is Cᵀ (operands swapped by `swapOperands` for a narrow C), stored transposed. */
  storeT?: boolean;
}

function plan(variant: MatmulVariant, p: Problem): Plan {
  const h = f16Key(!!p.bF16, !!p.biasF16) + (p.bias && p.biasRows ? ':br' : '');
  if (variant === 'subgroup') {
    // tile height follows M (rows past M cost as much as real ones), width follows N. Only the
    // vec4 non-transposed form gets the big tile: with scalar B loads or a transposed A, LLVM takes
    // over a minute to compile it (64x4: 66-70 s; 32x1: 2 s, both on lavapipe)
    const vecB = !p.storeT && !p.transB && p.n % 4 === 0 && p.bAligned;
    // a transposed B (nn.Linear's weight) read as vec4s along k, and C stored as vec4s where N allows
    const vecBT = !p.storeT && p.transB && p.bAligned;
    const vecC = vecBT && p.n % 4 === 0;
    const fast = vecB && !p.transA;
    const rows = Math.min(fast ? 64 : 32, p.m <= 8 ? 8 : p.m <= 16 ? 16 : p.m <= 32 ? 32 : 64);
    const groups = Math.min(fast ? 4 : 1, p.n <= 32 ? 1 : p.n <= 64 ? 2 : 4);
    const [tm, tn] = subgroupTile({ rows, groups });
    const lanes = p.lanes;
    // one kernel for every epilogue (bias, per-row bias, addend, none): chosen by the uniforms' flags
    const ep = !p.storeT;
    return {
      key: `matmul:sg:${p.transA}:${p.transB}:${rows}:${groups}:${vecB}:${lanes}:${!!p.rowSums}${f16Key(!!p.bF16, !!p.biasF16)}${p.storeT ? ':T' : ':ep'}${vecBT ? `:bt${vecC ? 'c' : ''}` : ''}`,
      wgsl: () => subgroupMatmulWgsl({ transA: p.transA, transB: p.transB, rows, groups, vecB, vecBT, vecC, lanes, runtimeEpilogue: ep, rowSums: !!p.rowSums, bF16: !!p.bF16, biasF16: !!p.biasF16, storeT: !!p.storeT }),
      grid: [Math.ceil(p.n / tn), Math.ceil(p.m / tm)],
      runtimeEpilogue: ep,
    };
  }
  if (variant === 'tiled') {
    const [x, y] = tiledWorkgroups(p.m, p.n, 1);
    return { key: `matmul:tiled:${p.transA}:${p.transB}:${p.bias}:${p.addend}:${!!p.rowSums}${h}`, wgsl: () => tiledMatmulWgsl({ transA: p.transA, transB: p.transB, bias: p.bias, biasRows: !!p.biasRows, addend: p.addend, rowSums: !!p.rowSums, bF16: !!p.bF16, biasF16: !!p.biasF16 }), grid: [x, y], runtimeEpilogue: false };
  }
  return { key: `matmul:base:${p.transA}:${p.transB}:${p.bias}:${p.addend}:${!!p.rowSums}${h}`, wgsl: () => baseWgsl(p.transA, p.transB, p.bias, p.addend, !!p.rowSums, !!p.bF16, !!p.biasF16, !!p.biasRows), grid: [Math.ceil(p.n / (TS * WGX)), Math.ceil(p.m / (TS * WGY))], runtimeEpilogue: false };
}

function uniforms(p: MatmulAttrs, aoff: number, boff: number, z0: number, biasOff = 0, addOff = 0, sumOff = 0, flags = 0): Uint32Array {
  return new UniformWriter().u32(...matmulUniformWords(p, aoff, boff, z0, biasOff, addOff, sumOff, flags)).build();
}

/** B may be read as vec4 and C written as vec4: offsets, row strides and batch strides all multiples of 4. */
function bAligned(p: MatmulAttrs, boff: number): boolean {
  const l = matmulLayout(p);
  const c = l.ldc % 4 === 0 && l.cBatchStride % 4 === 0 && l.cBatchStride2 % 4 === 0;
  return c && boff % 4 === 0 && p.bBatchStride % 4 === 0 && l.ldb % 4 === 0 && l.bBatchStride2 % 4 === 0;
}

const lanesOverride = new WeakMap<WebGPUBackend, SubgroupLanes>();

/**
 * The subgroup variant's broadcast width on this backend: forced by setMatmulSubgroupLanes, else
 * from the adapter's subgroup sizes; null where the variant must not run (no subgroups, or sizes
 * unknown or below 4).
 */
export function matmulSubgroupLanes(be: WebGPUBackend): SubgroupLanes | null {
  if (!be.rt.subgroups) return null;
  return lanesOverride.get(be) ?? subgroupLanesFor(be.rt.info.subgroupMinSize, be.rt.info.subgroupMaxSize);
}

/**
 * Forces the broadcast width (tests: 4 lanes on an 8-lane adapter runs the code path 4-lane
 * adapters take); refused above the adapter's minimum subgroup size, where it would be wrong.
 */
export function setMatmulSubgroupLanes(be: WebGPUBackend, lanes: SubgroupLanes | undefined): void {
  if (lanes === undefined) {
    lanesOverride.delete(be);
    return;
  }
  const natural = subgroupLanesFor(be.rt.info.subgroupMinSize, be.rt.info.subgroupMaxSize);
  if (!be.rt.subgroups || natural === null || lanes > natural) {
    throw new Error(`matmul: ${lanes}-lane broadcasts need subgroups of at least ${lanes} lanes; this adapter has ${be.rt.subgroups ? `${be.rt.info.subgroupMinSize}..${be.rt.info.subgroupMaxSize}` : 'no subgroups'}`);
  }
  lanesOverride.set(be, lanes);
}

function supported(be: WebGPUBackend, v: string): boolean {
  if (v === 'subgroup') return matmulSubgroupLanes(be) !== null;
  if (v === 'tiled') return (be.rt.limits.maxComputeInvocationsPerWorkgroup ?? 256) >= 256;
  return v === 'base';
}

/** Without a measurement: software adapters with subgroups want broadcasts, real GPUs want tiles. */
function heuristic(be: WebGPUBackend): MatmulVariant {
  if (be.rt.info.isSoftware) return supported(be, 'subgroup') ? 'subgroup' : 'base';
  return 'tiled';
}

registerTunable('matmul', {
  version: TUNING_VERSION,
  variants: MATMUL_VARIANTS,
  heuristic,
  supported,
  // 256^3: a few ms on lavapipe for the fast variant, microseconds on a GPU
  problem: (be) => {
    const n = 256;
    const attrs: MatmulAttrs = { batch: 1, m: n, n, k: n, transA: false, transB: false, aBatchStride: 0, bBatchStride: 0 };
    const candidates: Record<string, TuneDispatch[]> = {};
    const lanes = matmulSubgroupLanes(be) ?? 8;
    for (const v of MATMUL_VARIANTS) {
      const pl = plan(v, { lanes, m: n, n, k: n, transA: false, transB: false, bAligned: true, bias: false, addend: false });
      // a runtime epilogue's bias and addend bindings: A stands in (flags 0: neither is read)
      candidates[v] = [{ key: pl.key, wgsl: pl.wgsl, buffers: pl.runtimeEpilogue ? [0, 1, 2, 0, 0] : [0, 1, 2], uniforms: uniforms(attrs, 0, 0, 0), workgroups: [pl.grid[0], pl.grid[1], 1] }];
    }
    // a candidate may only win once its product matches this CPU one
    const check = {
      output: 2,
      expected: ([a, b]: Float32Array[]) => referenceMatmul(a!, b!, n, n, n),
      tolerance: 1e-4 * Math.sqrt(n),
    };
    return { buffers: [n * n, n * n, n * n], candidates, check };
  },
});

/** C = A·B for row-major m×k and k×n operands, in f64 accumulators: the tuner's reference. */
function referenceMatmul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float32Array {
  const c = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let kk = 0; kk < k; kk++) {
      const av = a[i * k + kk]!;
      const off = kk * n;
      for (let j = 0; j < n; j++) row[j]! += av * b[off + j]!;
    }
    c.set(row, i * n);
  }
  return c;
}

/** The variant matmul uses on this backend now (forced by env, overridden, tuned, cached or heuristic). */
export function matmulVariant(be: WebGPUBackend): MatmulVariant {
  return variantFor(be, 'matmul') as MatmulVariant;
}
/** Forces a variant on this backend (tests, benchmarks); undefined restores the tuned choice. */
export function setMatmulVariant(be: WebGPUBackend, v: MatmulVariant | undefined): void {
  setVariant(be, 'matmul', v);
}
/** The variants this adapter can run. */
export function matmulVariants(be: WebGPUBackend): MatmulVariant[] {
  return supportedVariants(be, 'matmul') as MatmulVariant[];
}
/** Measures the variants now (cached on disk) instead of in the background at first use. */
export function tuneMatmul(be: WebGPUBackend, opts: { force?: boolean } = {}): Promise<TuneResult | null> {
  return tune(be, 'matmul', opts);
}

export const matmul: KernelFn<WebGPUBackend, 'matmul'> = (be, inputs, attrs) => {
  const p = attrs;
  const [a, b] = inputs;
  const bias = p.hasBias ? inputs[2]! : null;
  const addend = p.hasAddend ? inputs[p.hasBias ? 3 : 2]! : null;
  const sums = p.rowSumsA ?? null;
  const total = p.batch * p.m * p.n;
  const out = be.alloc('float32', total);
  if (sums && p.batch * p.m > 0 && p.k === 0) {
    const n = p.batch * p.m;
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [n], out: { storage: sums.storage, shape: [n], strides: [1], offset: sums.offset, dtype: 'float32' } });
  }
  if (total === 0) return out;
  if (p.k === 0) {
    // C = 0 (+ bias); C's layout is a permutation of the dense one, so only the bias needs it
    const view: View = { storage: out, shape: [total], strides: [1], offset: 0, dtype: 'float32' };
    be.run('elementwise', [], { op: 'fill', params: [0], shape: [total], out: view });
    if (bias || addend) {
      const l = matmulLayout(p);
      const shape = [p.batch / l.batchInner, l.batchInner, p.m, p.n];
      const strides = [l.cBatchStride2, l.cBatchStride, l.ldc, 1];
      const srcs: View[] = [];
      if (bias) srcs.push({ storage: bias.storage, shape, strides: p.biasPerRow ? [0, 0, 1, 0] : [0, 0, 0, 1], offset: bias.offset, dtype: bias.dtype });
      if (addend) srcs.push({ storage: addend.storage, shape, strides, offset: addend.offset, dtype: 'float32' });
      be.run('elementwise', srcs, { op: srcs.length === 2 ? 'add' : 'copy', params: [], shape, out: { storage: out, shape, strides, offset: 0, dtype: 'float32' } });
    }
    return out;
  }
  const variant = matmulVariant(be);
  const owned: GpuStorage[] = [];
  try {
    let [av, bv, q] = [a!, b!, p];
    let storeT = false;
    if (variant === 'subgroup') {
      [av, bv, q] = relayout(be, av, bv, q, owned);
      if (!bias && !addend && !sums && narrowC(q, bv)) {
        [av, bv, q] = [bv, av, swapOperands(q)];
        storeT = true;
      }
    }
    const pl = plan(variant, { lanes: matmulSubgroupLanes(be) ?? 8, m: q.m, n: q.n, k: q.k, transA: q.transA, transB: q.transB, bAligned: bAligned(q, bv.offset), bias: !!bias, biasRows: !!p.biasPerRow, addend: !!addend, rowSums: !!sums, bF16: bv.dtype === 'float16', biasF16: bias?.dtype === 'float16', storeT });
    // a runtime epilogue binds both terms, A's buffer in place of an absent one (read-only, never read: flags)
    const epilogue = pl.runtimeEpilogue
      ? [bufferOf(bias ?? av), bufferOf(addend ?? av)]
      : [...(bias ? [bufferOf(bias)] : []), ...(addend ? [bufferOf(addend)] : [])];
    const flags = epilogueFlags(!!bias, !!p.biasPerRow, !!addend);
    // batches past the 65535 workgroups of one dimension go in further dispatches
    for (let z0 = 0; z0 < q.batch; z0 += MAX_Z) {
      be.rt.dispatch({
        name: 'matmul',
        key: pl.key,
        wgsl: pl.wgsl,
        buffers: [bufferOf(av), bufferOf(bv), out.buffer, ...epilogue, ...(sums ? [bufferOf(sums)] : [])],
        uniforms: uniforms(q, av.offset, bv.offset, z0, bias?.offset ?? 0, addend?.offset ?? 0, sums?.offset ?? 0, flags),
        workgroups: [pl.grid[0], pl.grid[1], Math.min(MAX_Z, q.batch - z0)],
      });
    }
  } finally {
    for (const o of owned) o.release();
  }
  return out;
};

/**
 * C with at most 16 columns and at least 4x as many rows (attention's P·V and its gradients at head
 * dim 8: n = 8) leaves most lanes of the subgroup kernel idle (each owns 4 columns of a 32-wide
 * tile: 2 of 8 busy at n = 8). Such a product runs as Cᵀ = Bᵀ·Aᵀ, stored transposed: 1.2-2.1x
 * less CPU time for attention's products at head dim 8 on lavapipe (alternated A/B).
 */
function narrowC(p: MatmulAttrs, b: View): boolean {
  return p.n <= 16 && p.m >= 4 * p.n && b.dtype === 'float32' && env('FOLIAR_MATMUL_RELAYOUT') !== '0';
}

/** The attrs of Cᵀ = Bᵀ·Aᵀ: operands, transposes, strides and offsets swapped; C's layout kept (the kernel stores transposed). */
function swapOperands(p: MatmulAttrs): MatmulAttrs {
  const l = matmulLayout(p);
  return {
    ...p, m: p.n, n: p.m, transA: !p.transB, transB: !p.transA, lda: l.ldb, ldb: l.lda,
    aBatchStride: p.bBatchStride, bBatchStride: p.aBatchStride, aBatchStride2: l.bBatchStride2, bBatchStride2: l.aBatchStride2,
    ldc: l.ldc, cBatchStride: l.cBatchStride, cBatchStride2: l.cBatchStride2, batchInner: l.batchInner,
  };
}

/**
 * Rows of C past which a transposed B is worth a transposed copy, and columns past which a
 * transposed A is (each copied element then serves at least that many multiply-adds).
 */
const RELAYOUT_MIN_REUSE = 128;
/** Below this many multiply-adds per batch the copy's dispatch costs what it saves (512·64·64: no gain on lavapipe). */
const RELAYOUT_MIN_MACS = 1 << 22;

/**
 * The subgroup kernel's fast form needs A row-major and B row-major with vec4 rows; a transposed
 * operand falls back to scalar loads and a small tile (the big one takes LLVM minutes to compile
 * with them) and runs at about half the speed (a linear layer's x·Wᵀ at [512,64]·[64,512]ᵀ: 6.4
 * vs 17 GFLOP/s on lavapipe). When the operand is reused across enough rows or columns, copy it
 * once into the row-major layout (one elementwise copy, memory-bound) and run the fast form:
 * 1.2-1.7x less CPU time per product from 512·512·64 up to 4096·320·320 and ResNet-sized
 * products (alternated A/B in one process, FOLIAR_MATMUL_RELAYOUT=0 for the in-place reads).
 * Unbatched (or broadcast) float32 operands only: the copy is then one matrix.
 */
function relayout(be: WebGPUBackend, a: View, b: View, p: MatmulAttrs, owned: GpuStorage[]): [View, View, MatmulAttrs] {
  // FOLIAR_MATMUL_RELAYOUT=0 reads transposed operands in place and keeps narrow products as they are (A/B measurements)
  if (env('FOLIAR_MATMUL_RELAYOUT') === '0' || p.m * p.n * p.k < RELAYOUT_MIN_MACS) return [a, b, p];
  const l = matmulLayout(p);
  const single = (stride: number, stride2: number) => p.batch === 1 || (stride === 0 && stride2 === 0);
  // the copy is one binding (strided copies have no split path)
  const fits = (rows: number, cols: number) => rows * cols * 4 <= be.maxBindingBytes;
  const copy = (src: View, rows: number, cols: number, strides: [number, number]): View => {
    const buf = be.alloc('float32', rows * cols);
    owned.push(buf);
    const shape = [rows, cols];
    be.run('elementwise', [{ storage: src.storage, shape, strides, offset: src.offset, dtype: 'float32' }], {
      op: 'copy', params: [], shape, out: { storage: buf, shape, strides: [cols, 1], offset: 0, dtype: 'float32' },
    });
    return { storage: buf, shape: [rows * cols], strides: [1], offset: 0, dtype: 'float32' };
  };
  let q = p;
  if (p.transB && b.dtype === 'float32' && p.m >= RELAYOUT_MIN_REUSE && p.n % 4 === 0 && single(p.bBatchStride, l.bBatchStride2) && fits(p.k, p.n)) {
    // B is stored [n, k] with row stride ldb: element (kk, j) at j·ldb + kk
    b = copy(b, p.k, p.n, [1, l.ldb]);
    q = { ...q, transB: false, ldb: p.n, bBatchStride: 0, bBatchStride2: 0 };
  }
  if (p.transA && a.dtype === 'float32' && p.n >= RELAYOUT_MIN_REUSE && single(p.aBatchStride, l.aBatchStride2) && fits(p.m, p.k)) {
    // A is stored [k, m] with row stride lda: element (i, kk) at kk·lda + i
    a = copy(a, p.m, p.k, [1, l.lda]);
    q = { ...q, transA: false, lda: p.k, aBatchStride: 0, aBatchStride2: 0 };
  }
  return [a, b, q];
}
