import { Tensor } from '../../tensor.js';
import type { View } from '../../backend.js';
import { broadcastShapes, contiguousStrides, fmtShape, numel, shapesEqual } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
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
function groupStride(t: Strided, from: number, to: number): number | null {
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

interface Strided {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

interface Batching {
  inner: number;
  /** Per operand (A, B, then C): [inner stride, outer stride]. */
  s: [number, number][];
}

/**
 * Splits the batch dims at one point into an outer and an inner level that every operand (and the
 * output) steps through with one stride each (e.g. q viewed as [B, H, L, D] from [B, L, H, D]:
 * strides L·H·D and D).
 */
function batching(ops: readonly Strided[], batchShape: number[]): Batching | null {
  const nb = batchShape.length;
  for (let sp = 0; sp <= nb; sp++) {
    const s: [number, number][] = [];
    for (const t of ops) {
      const i = groupStride(t, sp, nb), o = groupStride(t, 0, sp);
      if (i === null || o === null) break;
      s.push([i, o]);
    }
    if (s.length === ops.length) return { inner: numel(batchShape.slice(sp)), s };
  }
  return null;
}

/** Strides that lay `shape` out densely in some dim order (a permuted contiguous tensor), no gaps, no broadcast. */
export function isDensePermutation(shape: readonly number[], strides: readonly number[]): boolean {
  const dims = shape.map((d, i) => [d, strides[i]!] as const).filter(([d]) => d !== 1).sort((x, y) => x[1] - y[1]);
  let expect = 1;
  for (const [d, st] of dims) {
    if (st !== expect) return false;
    expect *= d;
  }
  return true;
}

export interface MatmulOptions {
  /** Scales the product, folded into the kernel's store (attention's 1/√d): alpha · a @ b. */
  alpha?: number;
  /** [n], added to every row of the product in the kernel's store (a linear layer's bias). */
  bias?: Tensor | null;
  /**
   * Strides to store the [...batch, m, n] result with: a permutation of the dense layout with unit
   * column stride (e.g. attention's output [B, H, L, D] stored as [B, L, H, D], so that merging the
   * heads is a view). Ignored (dense output) when the kernel cannot address it.
   */
  outStrides?: readonly number[];
  /**
   * A tensor of the result's shape added in the kernel's store (a gradient accumulated from other
   * uses, a residual): alpha · a @ b + bias + addend. Its gradient is the incoming one.
   */
  addend?: Tensor | null;
  /**
   * A contiguous float32 tensor of batch · m elements that receives the row sums of a
   * (Σ_k a[..., i, k], unscaled by alpha), written by the product's own kernel. No gradient flows into
   * it: for backward passes (a linear layer's bias gradient next to its weight gradient).
   */
  rowSumsInto?: Tensor | null;
}

function viewOf(t: Tensor): View {
  return { storage: t.storage, shape: t.shape, strides: t.strides, offset: t.offset, dtype: t.dtype };
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
  const af = isFloat(a) ? a : cast(a, 'float32');
  const bf = isFloat(b) ? b : cast(b, 'float32');
  const y = matmul(af, bf);
  if (af !== a) af.dispose();
  if (bf !== b) bf.dispose();
  const isInt = (t: Tensor): boolean => t.dtype === 'int32' || t.dtype === 'uint32';
  if (!isInt(a) || !isInt(b)) return y;
  const yi = cast(y, 'int32');
  y.dispose();
  return yi;
}

/** float32, or float16 storage (issue 16: computed in f32). */
function isFloat(t: Tensor): boolean {
  return t.dtype === 'float32' || t.dtype === 'float16';
}

/** torch.matmul semantics: 1-D operands, batched and broadcast batch dims, transposed views without copies. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulWith(a, b);
}

/**
 * matmul with a scale, a bias and the output's layout folded into the kernel (`opts`; float32
 * operands of rank 2 or more): alpha · a @ b + bias, stored with `outStrides`.
 */
export function matmulWith(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new RangeError('matmul: both operands need at least one dimension');
  if (a.backend !== b.backend) throw new Error('matmul: operands live on different backends');
  const fused = opts.alpha !== undefined || !!opts.bias || !!opts.outStrides || !!opts.addend || !!opts.rowSumsInto;
  if (fused && (a.rank < 2 || b.rank < 2 || !isFloat(a) || !isFloat(b))) {
    throw new RangeError('matmul: alpha, bias and outStrides need float operands of rank 2 or more');
  }
  // float16 operands go to the kernel as they are: B (a weight) is read in place, A is cast at the
  // backend's f16 boundary (ops/cast/boundary.ts); the product is float32
  if (!isFloat(a) || !isFloat(b)) return promoted(a, b);
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
  const outShape = [...batchShape, m, n];
  const dense: Strided = { shape: outShape, strides: contiguousStrides(outShape) };
  const os = opts.outStrides;
  const cLayout: Strided = os && os.length === outShape.length && (os[os.length - 1] === 1 || n === 1) && isDensePermutation(outShape, os) ? { shape: outShape, strides: os } : dense;
  let c = cLayout;
  let bat = batching([at, bt, c], batchShape);
  if (!bat && c !== dense) bat = batching([at, bt, (c = dense)], batchShape);
  if (!bat) {
    if (groupStride(at, 0, batchShape.length) === null) am = matrixOf((at = own(contiguous(at), at)), m, k)!;
    if (groupStride(bt, 0, batchShape.length) === null) bm = matrixOf((bt = own(contiguous(bt), bt)), k, n)!;
    bat = batching([at, bt, c], batchShape) ?? batching([at, bt, (c = dense)], batchShape)!;
  }
  const bias = opts.bias ?? null;
  if (bias) {
    if (bias.rank !== 1 || bias.shape[0] !== n || !isFloat(bias)) throw new RangeError(`matmul: bias ${fmtShape(bias.shape)} ${bias.dtype} must be a float32 or float16 [${n}]`);
    if (bias.backend !== a.backend) throw new Error('matmul: the bias lives on another backend');
  }
  const biasC = bias ? own(bias.isContiguous ? bias : contiguous(bias), bias) : null;
  const addend = opts.addend ?? null;
  if (addend) {
    if (!shapesEqual(addend.shape, outShape) || addend.dtype !== 'float32') throw new RangeError(`matmul: addend ${fmtShape(addend.shape)} must be a float32 ${fmtShape(outShape)}`);
    if (addend.backend !== a.backend) throw new Error('matmul: the addend lives on another backend');
  }
  // the kernel reads the addend in C's layout: a dense output takes a contiguous addend as it is
  if (addend && !(addend.isContiguous && c === dense)) {
    c = dense;
    bat = batching([at, bt, c], batchShape) ?? bat;
  }
  const addC = addend ? own(addend.isContiguous ? addend : contiguous(addend), addend) : null;
  const sums = opts.rowSumsInto ?? null;
  if (sums) {
    if (sums.size !== batch * m || sums.dtype !== 'float32' || !sums.isContiguous) throw new RangeError(`matmul: rowSumsInto ${fmtShape(sums.shape)} must be a contiguous float32 tensor of ${batch * m} elements`);
    if (sums.backend !== a.backend) throw new Error('matmul: rowSumsInto lives on another backend');
    if (n === 0 && batch * m > 0) {
      // no product to fold the sums into: a plain reduction
      noGrad(() => {
        const s = sumToShape(at, [...batchShape, m, 1]);
        const flat = contiguous(s);
        a.backend.run('elementwise', [{ ...viewOf(flat), shape: [batch * m], strides: [1] }], { op: 'copy', params: [], shape: [batch * m], out: sums });
        flat.dispose();
        s.dispose();
      });
    }
  }
  const alpha = opts.alpha ?? 1;
  const rank = outShape.length;
  const [ci, co] = bat.s[2]!;
  const attrs: MatmulAttrs = {
    batch, m, n, k,
    transA: am.trans, transB: bm.trans,
    aBatchStride: bat.s[0]![0], bBatchStride: bat.s[1]![0],
    lda: am.ld, ldb: bm.ld,
    batchInner: bat.inner, aBatchStride2: bat.s[0]![1], bBatchStride2: bat.s[1]![1],
    ...(c !== dense ? { ldc: m === 1 ? n : c.strides[rank - 2]!, cBatchStride: ci, cBatchStride2: co } : {}),
    ...(alpha !== 1 ? { alpha } : {}),
    ...(biasC ? { hasBias: true } : {}),
    ...(addC ? { hasAddend: true } : {}),
    ...(sums && n > 0 ? { rowSumsA: sums } : {}),
  };
  const views: Tensor[] = [at, bt];
  if (biasC) views.push(biasC);
  if (addC) views.push(addC);
  const storage = a.backend.run('matmul', views, attrs);
  for (const t of owned) t.dispose();
  const y = new Tensor(storage, outShape, c.strides);
  return record(
    y,
    'matmul',
    [a, b, ...(bias ? [bias] : []), ...(addend ? [addend] : [])],
    (g, [sa, sb]) => [
      a.requiresGrad ? gradInLayout(a, g, transpose(sb!, -1, -2), alpha) : null,
      b.requiresGrad ? gradInLayout(b, transpose(sa!, -1, -2), g, alpha) : null,
      ...(bias ? [bias.requiresGrad ? sumToShape(g, bias.shape) : null] : []),
      ...(addend ? [addend.requiresGrad ? g : null] : []),
    ],
    [a, b],
  );
}

/**
 * The gradient p @ q (times alpha) of operand x, stored in x's own layout when x is a permuted dense
 * view (attention's heads split from [B, L, H·D]): the views that made x then hand a contiguous
 * gradient back, and the head merge of the backward is no copy. A transposed x (kᵀ) gets its
 * gradient computed transposed (qᵀ @ pᵀ) into the layout of xᵀ.
 */
function gradInLayout(x: Tensor, p: Tensor, q: Tensor, alpha: number): Tensor {
  const r = x.rank;
  const prodShape = [...broadcastShapes(p.shape.slice(0, -2), q.shape.slice(0, -2)), p.shape[p.rank - 2]!, q.shape[q.rank - 1]!];
  const o = alpha !== 1 ? { alpha } : {};
  const same = r >= 3 && shapesEqual(prodShape, x.shape) && !x.isContiguous && isDensePermutation(x.shape, x.strides);
  if (same && x.strides[r - 1] === 1) return matmulWith(p, q, { ...o, outStrides: x.strides });
  if (same && x.strides[r - 2] === 1) {
    const st = [...x.strides];
    [st[r - 2], st[r - 1]] = [st[r - 1]!, st[r - 2]!];
    const pt = transpose(p, -1, -2), qt = transpose(q, -1, -2);
    const yt = matmulWith(qt, pt, { ...o, outStrides: st });
    const y = transpose(yt, -1, -2);
    pt.dispose();
    qt.dispose();
    yt.dispose();
    return y;
  }
  return sumToShape(matmulWith(p, q, o), x.shape);
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
  /**
   * The output's layout (defaults: dense): C[b] row i, column j is stored at
   * o * cBatchStride2 + i' * cBatchStride + i * ldc + j (b = o * batchInner + i'). The layout must
   * cover the batch · m · n elements of the output exactly once (a permutation of the dense one).
   */
  ldc?: number;
  cBatchStride?: number;
  cBatchStride2?: number;
  /** C = alpha · op(A) @ op(B) (default 1). */
  alpha?: number;
  /** Input 2 is a bias [n] (contiguous from its offset) added to every row of C. */
  hasBias?: boolean;
  /** The bias is [m] instead, added to every column: bias[i] to row i (a 1x1 convolution's per-channel bias). */
  biasPerRow?: boolean;
  /**
   * Also writes Σ_k op(A)[b][i, k] (unscaled) to rowSumsA at offset + b · m + i (a float32 view of
   * batch · m elements, not aliasing any input): a linear layer's bias gradient comes out of its
   * weight-gradient product (dW = gᵀ·x: the row sums of gᵀ) instead of a separate reduction. Needs n > 0.
   */
  rowSumsA?: View;
  /** The next input (after the bias, if any) is added to C, read in C's layout from its own offset. */
  hasAddend?: boolean;
}
