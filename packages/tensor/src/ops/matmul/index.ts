import { Tensor } from '../../tensor.js';
import { broadcastShapes, fmtShape, numel } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { contiguous, expand, transpose, unsqueeze, squeeze } from '../views.js';
import { sumToShape, cast } from '../elementwise/index.js';

/** The last two dims as the kernel reads them: row-major (trans false) or column-major, any leading stride. */
interface Matrix {
  trans: boolean;
  ld: number;
}

function matrixOf(t: Tensor, r: number, c: number): Matrix | null {
  const rank = t.rank;
  const sr = t.strides[rank - 2]!, sc = t.strides[rank - 1]!;
  if (sc === 1 || c === 1) return { trans: false, ld: r === 1 ? c : sr };
  if (sr === 1 || r === 1) return { trans: true, ld: c === 1 ? r : sc };
  return null;
}

/** The one stride that steps through batch dims [from, to) of t in row-major order, or null if there is none. */
function groupStride(t: Tensor, from: number, to: number): number | null {
  let stride: number | null = null;
  let expect = 0;
  for (let i = to - 1; i >= from; i--) {
    const d = t.shape[i]!;
    if (d === 1) continue;
    if (stride === null) {
      stride = t.strides[i]!;
      expect = stride * d;
    } else if (t.strides[i] !== expect) return null;
    else expect *= d;
  }
  return stride ?? 0;
}

interface Batching {
  inner: number;
  a: [number, number];
  b: [number, number];
}

/**
 * Splits the batch dims at one point into an outer and an inner level that both operands step through
 * with one stride each (e.g. q viewed as [B, H, L, D] from [B, L, H, D]: strides L·H·D and D).
 */
function batching(a: Tensor, b: Tensor, batchShape: number[]): Batching | null {
  const nb = batchShape.length;
  for (let sp = 0; sp <= nb; sp++) {
    const ai = groupStride(a, sp, nb), ao = groupStride(a, 0, sp);
    const bi = groupStride(b, sp, nb), bo = groupStride(b, 0, sp);
    if (ai !== null && ao !== null && bi !== null && bo !== null) return { inner: numel(batchShape.slice(sp)), a: [ai, ao], b: [bi, bo] };
  }
  return null;
}

/** x broadcast to [...batchShape, r, c] (a view; owned when it is a new handle). */
function expanded(x: Tensor, batchShape: number[], r: number, c: number): Tensor {
  const full = [...batchShape, r, c];
  return x.rank === full.length && x.shape.every((d, i) => d === full[i]) ? x : expand(x, full);
}

/**
 * The kernels read f32: integer operands are cast first. int @ int returns int32 as PyTorch does
 * (exact while every partial sum stays below 2^24); int @ float returns float32 (PyTorch refuses
 * mixed dtypes; foliar promotes, as its elementwise ops do).
 */
function promoted(a: Tensor, b: Tensor): Tensor {
  const af = a.dtype === 'float32' ? a : cast(a, 'float32');
  const bf = b.dtype === 'float32' ? b : cast(b, 'float32');
  const y = matmul(af, bf);
  if (af !== a) af.dispose();
  if (bf !== b) bf.dispose();
  const isInt = (t: Tensor): boolean => t.dtype === 'int32' || t.dtype === 'uint32';
  if (!isInt(a) || !isInt(b)) return y;
  const yi = cast(y, 'int32');
  y.dispose();
  return yi;
}

/** torch.matmul semantics: 1-D operands, batched and broadcast batch dims, transposed views without copies. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new RangeError('matmul: both operands need at least one dimension');
  if (a.backend !== b.backend) throw new Error('matmul: operands live on different backends');
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return promoted(a, b);
  if (a.rank === 1) {
    const a2 = unsqueeze(a, 0);
    const y = matmul(a2, b);
    // [.., 1, n] -> [.., n]; when b is also 1-D the result is [1] -> 0-d
    const out = b.rank === 1 ? squeeze(y, -1) : squeeze(y, -2);
    a2.dispose();
    y.dispose();
    return out;
  }
  if (b.rank === 1) {
    const b2 = unsqueeze(b, -1);
    const y = matmul(a, b2);
    const out = squeeze(y, -1);
    b2.dispose();
    y.dispose();
    return out;
  }
  const m = a.shape[a.rank - 2]!, k = a.shape[a.rank - 1]!;
  const k2 = b.shape[b.rank - 2]!, n = b.shape[b.rank - 1]!;
  if (k !== k2) throw new RangeError(`matmul: shapes ${fmtShape(a.shape)} and ${fmtShape(b.shape)} do not align (${k} != ${k2})`);
  let batchShape: number[];
  try {
    batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    throw new RangeError(`matmul: batch dims of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be broadcast`);
  }
  const batch = numel(batchShape);
  // operands are read in place when each matrix is row- or column-major (any row stride) and the batch
  // dims split into two levels of one stride each; otherwise the operand is copied to contiguous first
  const owned: Tensor[] = [];
  const own = (t: Tensor, from: Tensor): Tensor => {
    if (t !== from) owned.push(t);
    return t;
  };
  let at = own(expanded(a, batchShape, m, k), a);
  let bt = own(expanded(b, batchShape, k, n), b);
  let am = matrixOf(at, m, k);
  let bm = matrixOf(bt, k, n);
  if (!am) am = matrixOf((at = own(contiguous(at), at)), m, k)!;
  if (!bm) bm = matrixOf((bt = own(contiguous(bt), bt)), k, n)!;
  let bat = batching(at, bt, batchShape);
  if (!bat) {
    if (groupStride(at, 0, batchShape.length) === null) am = matrixOf((at = own(contiguous(at), at)), m, k)!;
    if (groupStride(bt, 0, batchShape.length) === null) bm = matrixOf((bt = own(contiguous(bt), bt)), k, n)!;
    bat = batching(at, bt, batchShape)!;
  }
  const attrs: MatmulAttrs = {
    batch, m, n, k,
    transA: am.trans, transB: bm.trans,
    aBatchStride: bat.a[0], bBatchStride: bat.b[0],
    lda: am.ld, ldb: bm.ld,
    batchInner: bat.inner, aBatchStride2: bat.a[1], bBatchStride2: bat.b[1],
  };
  const storage = a.backend.run('matmul', [at, bt], attrs);
  for (const t of owned) t.dispose();
  const y = new Tensor(storage, [...batchShape, m, n]);
  return record(
    y,
    'matmul',
    [a, b],
    (g, [sa, sb]) => [
      a.requiresGrad ? sumToShape(matmul(g, transpose(sb!, -1, -2)), a.shape) : null,
      b.requiresGrad ? sumToShape(matmul(transpose(sa!, -1, -2), g), b.shape) : null,
    ],
    [a, b],
  );
}

// The kernel contract of this op (its entry of Kernels in backends/kernel-attrs.ts).

/**
 * C[b] = op(A[b]) @ op(B[b]), C contiguous [batch, m, n]. A is row-major [m, k] (or [k, m] when transA)
 * with rows `lda` apart (default: dense); B likewise [k, n] (or [n, k] when transB), rows `ldb` apart.
 * Batch b = o * batchInner + i (batchInner defaults to batch): A[b] starts at
 * a.offset + o * aBatchStride2 + i * aBatchStride, B[b] likewise. A stride 0 broadcasts.
 */
export interface MatmulAttrs {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  aBatchStride: number;
  bBatchStride: number;
  lda?: number;
  ldb?: number;
  batchInner?: number;
  aBatchStride2?: number;
  bBatchStride2?: number;
}
