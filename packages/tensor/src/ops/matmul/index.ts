import { Tensor } from '../../tensor.js';
import { broadcastShapes, fmtShape, numel } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { contiguous, expand, transpose, unsqueeze, squeeze } from '../views.js';
import { sumToShape, cast } from '../elementwise/index.js';

interface Operand {
  t: Tensor;
  trans: boolean;
  batchStride: number;
  owned: boolean;
}

/**
 * Describes a [..batch, r, c] operand for the kernel without copying when possible: the matrix must
 * be row-major or column-major (a transposed view), and the batch dims must collapse to one stride.
 */
function operand(x: Tensor, batchShape: number[], r: number, c: number): Operand {
  const full = [...batchShape, r, c];
  let t = x.rank === full.length && x.shape.every((d, i) => d === full[i]) ? x : expand(x, full);
  let owned = t !== x;
  const rank = t.rank;
  const sr = t.strides[rank - 2]!, sc = t.strides[rank - 1]!;
  let trans: boolean | null = null;
  if ((sc === 1 || c === 1) && (sr === c || r === 1)) trans = false;
  else if ((sr === 1 || r === 1) && (sc === r || c === 1)) trans = true;
  let batchStride = 0;
  let ok = trans !== null;
  if (ok) {
    // batch dims: all broadcast (stride 0) or one uniform stride over the flattened batch
    const bs = t.strides.slice(0, rank - 2);
    const bsh = t.shape.slice(0, rank - 2);
    const nonTrivial = bs.map((s, i) => (bsh[i] === 1 ? null : s)).filter((s) => s !== null) as number[];
    if (nonTrivial.every((s) => s === 0)) batchStride = 0;
    else {
      let expect = r * c;
      for (let i = bs.length - 1; i >= 0; i--) {
        if (bsh[i] === 1) continue;
        if (bs[i] !== expect) ok = false;
        expect *= bsh[i]!;
      }
      batchStride = r * c;
    }
  }
  if (!ok) {
    const c2 = contiguous(t);
    if (owned) t.dispose();
    t = c2;
    owned = true;
    trans = false;
    batchStride = r * c;
  }
  return { t, trans: trans!, batchStride, owned };
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
  const A = operand(a, batchShape, m, k);
  const B = operand(b, batchShape, k, n);
  const attrs: MatmulAttrs = { batch, m, n, k, transA: A.trans, transB: B.trans, aBatchStride: A.batchStride, bBatchStride: B.batchStride };
  const storage = a.backend.run('matmul', [A.t, B.t], attrs);
  if (A.owned) A.t.dispose();
  if (B.owned) B.t.dispose();
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
 * C[b] = op(A[b]) @ op(B[b]), C contiguous [batch, m, n]. A[b] starts at a.offset + b*aBatchStride and is
 * row-major [m, k] (or [k, m] when transA); B likewise [k, n] (or [n, k] when transB). Batch stride 0 broadcasts.
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
}
