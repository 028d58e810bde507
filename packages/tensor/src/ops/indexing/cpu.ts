// indexing kernels (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import { indexOutOfRange, ignoreNote } from '../../index-range.js';

export const index_check: KernelFn<CpuBackend, 'index_check'> = (_be, [ids], attrs) => {
  const { n, size, op, what, ignore } = attrs;
  const I = dataOf(ids!);
  for (let j = ids!.offset; j < ids!.offset + n; j++) {
    const v = I[j]!;
    if ((v < 0 || v >= size) && v !== ignore) throw indexOutOfRange(op, what, v, size, ignoreNote(ignore));
  }
};

export const index_select: KernelFn<CpuBackend, 'index_select'> = (be, [x, idx], attrs) => {
  const { outer, size, inner, n, op, dim } = attrs;
  const X = dataOf(x!), I = dataOf(idx!);
  for (let j = 0; j < n; j++) {
    const id = I[idx!.offset + j]!;
    if (id < 0 || id >= size) throw indexOutOfRange(op ?? 'indexSelect', 'index', id, size, dim === undefined ? '' : ` (dim ${dim})`);
  }
  const out = be.alloc(x!.dtype, outer * n * inner) as CpuStorage;
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < n; j++) {
      const id = I[idx!.offset + j]!;
      for (let i = 0; i < inner; i++) out.data[(o * n + j) * inner + i] = X[x!.offset + (o * size + id) * inner + i]!;
    }
  return out;
};

export const index_add: KernelFn<CpuBackend, 'index_add'> = (be, [src, idx], attrs) => {
  const { outer, size, inner, n } = attrs;
  const S = dataOf(src!), I = dataOf(idx!);
  const acc = new Float64Array(outer * size * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < n; j++) {
      const id = I[idx!.offset + j]!;
      for (let i = 0; i < inner; i++) acc[(o * size + id) * inner + i]! += S[src!.offset + (o * n + j) * inner + i]!;
    }
  const out = be.alloc('float32', acc.length) as CpuStorage;
  out.data.set(acc);
  return out;
};
