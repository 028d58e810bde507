// reduce kernel (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';

export const reduce: KernelFn<CpuBackend, 'reduce'> = (be, [x], attrs) => {
  const { op, outer, inner } = attrs;
  // a grouped axis (attrs.groups runs of size elements, outer·size·inner apart) is read as one axis
  const groups = Math.max(1, attrs.groups ?? 1);
  const size = attrs.size * groups;
  const gstride = outer * attrs.size * inner;
  const at = (o: number, r: number, i: number): number => base + Math.floor(r / attrs.size) * gstride + (o * attrs.size + (r % attrs.size)) * inner + i;
  const src = dataOf(x!);
  const base = x!.offset;
  const arg = op === 'argmax' || op === 'argmin';
  const out = be.alloc(arg ? 'int32' : 'float32', outer * inner) as CpuStorage;
  const od = out.data;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      if (op === 'sum') {
        let acc = 0; // f64 accumulation: the reference is more exact than the device
        for (let r = 0; r < size; r++) acc += src[at(o, r, i)]!;
        od[o * inner + i] = acc * (attrs.scale ?? 1);
      } else {
        let best = op === 'max' || op === 'argmax' ? -Infinity : Infinity;
        let bi = 0;
        for (let r = 0; r < size; r++) {
          const v = src[at(o, r, i)]!;
          const better = op === 'max' || op === 'argmax' ? v > best : v < best;
          if (better || (Number.isNaN(v) && !Number.isNaN(best))) {
            best = v;
            bi = r;
          }
        }
        od[o * inner + i] = arg ? bi : best;
      }
    }
  }
  return out;
};
