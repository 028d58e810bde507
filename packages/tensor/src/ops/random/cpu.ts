// random kernel (CPU reference, Philox4x32-10): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage } from '../../backends/cpu/cpu-backend.js';
import { philoxFill } from '../../random/philox.js';

export const random: KernelFn<CpuBackend, 'random'> = (be, _inputs, attrs) => {
  const a = attrs;
  const out = be.alloc(a.dist === 'bits' ? 'uint32' : 'float32', a.n) as CpuStorage;
  philoxFill(out.data as Float32Array | Uint32Array, a);
  return out;
};
