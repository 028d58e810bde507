import { Tensor } from '../../tensor.js';
import type { View } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { record } from '../../autograd/record.js';
import { castView } from './boundary.js';
export { castView, castInto } from './boundary.js';

/**
 * dtype conversion between the float types (float32 ↔ float16, and a same-type copy). One op:
 * forward is the `cast` kernel, backward casts the gradient back to the input's dtype (a float16
 * input gets an f32 gradient: gradients are always float32, see `gradDtype`).
 *
 * float16 rules (issue 16, README "float16"): f16 is a storage type. Kernels compute in f32; the hot
 * kernels (matmul's B operand and bias, conv weights and bias, norm affine params) read f16 where
 * it lies, and every other kernel gets its f16 inputs cast to f32 at the backend's `run` boundary
 * (ops/cast/boundary.ts). Results are float32, except the pure data movements that are asked for
 * float16 (contiguous / clone / cat / pad of f16 tensors), which stay float16.
 */
export const FLOAT_DTYPES: readonly DType[] = ['float32', 'float16'];

function checkFloat(dtype: DType, what: string): void {
  if (!FLOAT_DTYPES.includes(dtype)) throw new TypeError(`cast: ${what} must be float32 or float16, got ${dtype} (integer casts: toInt() / toFloat())`);
}

/** x converted to `dtype` (a new contiguous tensor; a copy even when the dtype already matches). */
export function castTo(x: Tensor, dtype: DType): Tensor {
  checkFloat(x.dtype, 'the input');
  checkFloat(dtype, 'the target dtype');
  const storage = castView(x, dtype);
  const y = new Tensor(storage, x.shape);
  // the gradient w.r.t. an f16 tensor is kept in f32 (no precision lost before an optimizer sees it)
  return record(y, 'cast', [x], (g) => [g.dtype === 'float32' ? g.share() : castTo(g, 'float32')]);
}

// The kernel contract of this op (its entry of Kernels in backends/kernel-attrs.ts).

/**
 * Input 0 (a strided view of `shape`, float32 or float16) converted to `dtype`: a new contiguous
 * storage, or written into `out` (a view of `shape` whose dtype is `dtype`; nothing returned).
 * f32 → f16 rounds to nearest even (overflow → ±inf, NaN stays NaN), f16 → f32 is exact.
 */
export interface CastAttrs {
  dtype: DType;
  shape: number[];
  out?: View;
}
