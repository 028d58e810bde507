// concat kernel (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';

export const concat: KernelFn<CpuBackend, 'concat'> = (be, inputs, attrs) => {
  const { outer, inner, sizes } = attrs;
  const total = sizes.reduce((a, b) => a + b, 0);
  const out = be.alloc(inputs[0]!.dtype, outer * total * inner) as CpuStorage;
  let start = 0;
  inputs.forEach((v, k) => {
    const src = dataOf(v);
    const [so, sd, si] = v.strides as [number, number, number];
    for (let o = 0; o < outer; o++)
      for (let c = 0; c < sizes[k]!; c++)
        for (let i = 0; i < inner; i++) out.data[(o * total + start + c) * inner + i] = src[v.offset + o * so + c * sd + i * si]!;
    start += sizes[k]!;
  });
  return out;
};
