// elementwise kernel (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn, View } from '../../backend.js';
import { contiguousStrides } from '../../shape.js';
import { ELEMENTWISE, type ElementwiseName } from './table.js';
import { checkPair } from './pair.js';
import { CpuBackend, dataOf, forEachIndex } from '../../backends/cpu/cpu-backend.js';
import type { DType } from '../../dtype.js';

const f = Math.fround;

export const elementwise: KernelFn<CpuBackend, 'elementwise'> = (be, inputs, attrs) => {
  const a = attrs;
  const def = ELEMENTWISE[a.op as ElementwiseName];
  if (a.pair) checkPair(a.pair, a.out);
  const p = a.params ?? [];
  const outView: View = a.out ?? {
    storage: be.alloc((a.outDtype ?? 'float32') as DType, a.shape.reduce((x, y) => x * y, 1)),
    shape: a.shape,
    strides: contiguousStrides(a.shape),
    offset: 0,
    dtype: a.outDtype ?? 'float32',
  };
  const od = dataOf(outView);
  const ins = inputs.map(dataOf);
  const isInt = outView.dtype !== 'float32';
  const views = [...inputs, outView];
  const fn = def.cpu;
  const pair = a.pair ? ELEMENTWISE[a.pair.op as ElementwiseName].cpu : null;
  const shift = a.pair?.offset ?? 0;
  const a0 = ins[0], a1 = ins[1], a2 = ins[2];
  forEachIndex(a.shape, views.map((v) => v.strides), views.map((v) => v.offset), (_i, o) => {
    const x = a0 ? a0[o[0]!]! : 0;
    const y = a1 ? a1[o[1]!]! : 0;
    const z = a2 ? a2[o[2]!]! : 0;
    const r = fn(x, y, z, p);
    const oi = o[views.length - 1]!;
    od[oi] = isInt ? Math.trunc(r) : f(r);
    if (pair) {
      const r2 = pair(x, y, z, p);
      od[oi + shift] = isInt ? Math.trunc(r2) : f(r2);
    }
  });
  return a.out ? undefined : outView.storage;
};
