import type { KernelFn, View } from '../../../backend.js';
import { contiguousStrides } from '../../../shape.js';
import { ELEMENTWISE, type ElementwiseName } from '../../../ops/elementwise/table.js';
import { CpuBackend, CpuStorage, dataOf, forEachIndex } from '../cpu-backend.js';
import type { DType } from '../../../dtype.js';
import { philoxFill } from '../../../random/philox.js';
import type {
  ElementwiseAttrs, ReduceAttrs, IndexSelectAttrs, IndexCheckAttrs, SoftmaxAttrs, RandomAttrs,
} from '../../kernel-attrs.js';
import { indexOutOfRange, ignoreNote } from '../../../index-range.js';

const f = Math.fround;

export const random: KernelFn<CpuBackend, 'random'> = (be, _inputs, attrs) => {
  const a = attrs;
  const out = be.alloc(a.dist === 'bits' ? 'uint32' : 'float32', a.n) as CpuStorage;
  philoxFill(out.data as Float32Array | Uint32Array, a);
  return out;
};
