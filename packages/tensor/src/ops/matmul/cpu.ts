// matmul kernel (CPU reference): listed in the CPU kernel table (backends/cpu/kernels/index.ts).
import type { KernelFn } from '../../backend.js';
import { CpuBackend, CpuStorage, dataOf } from '../../backends/cpu/cpu-backend.js';
import { matmulLayout } from './layout.js';

export const matmul: KernelFn<CpuBackend, 'matmul'> = (be, inputs, attrs) => {
  const [a, b] = inputs;
  const bias = attrs.hasBias ? inputs[2]! : null;
  const addend = attrs.hasAddend ? inputs[attrs.hasBias ? 3 : 2]! : null;
  const D = addend ? dataOf(addend) : null;
  const { batch, m, n, k, transA, transB, aBatchStride, bBatchStride } = attrs;
  const { lda, ldb, batchInner, aBatchStride2, bBatchStride2, ldc, cBatchStride, cBatchStride2, alpha } = matmulLayout(attrs);
  const A = dataOf(a!), B = dataOf(b!);
  const Bias = attrs.hasBias ? dataOf(bias!) : null;
  // the device multiplies by alpha in f32; so does the reference
  const alpha32 = Math.fround(alpha);
  const out = be.alloc('float32', batch * m * n) as CpuStorage;
  const C = out.data;
  for (let bi = 0; bi < batch; bi++) {
    const outer = Math.floor(bi / batchInner), inner = bi % batchInner;
    const ao = a!.offset + outer * aBatchStride2 + inner * aBatchStride;
    const bo = b!.offset + outer * bBatchStride2 + inner * bBatchStride;
    const co = outer * cBatchStride2 + inner * cBatchStride;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let kk = 0; kk < k; kk++) {
          const av = A[ao + (transA ? kk * lda + i : i * lda + kk)]!;
          const bv = B[bo + (transB ? j * ldb + kk : kk * ldb + j)]!;
          acc += av * bv;
        }
        const ci = co + i * ldc + j;
        C[ci] = (alpha === 1 ? acc : acc * alpha32) + (Bias ? Bias[bias!.offset + (attrs.biasPerRow ? i : j)]! : 0) + (D ? D[addend!.offset + ci]! : 0);
      }
    }
  }
  if (attrs.rowSumsA) {
    // Σ_k op(A)[b][i, k] (unscaled): a linear layer's bias gradient from its weight-gradient product
    const E = dataOf(attrs.rowSumsA), eo = attrs.rowSumsA.offset;
    for (let bi = 0; bi < batch; bi++) {
      const ao = a!.offset + Math.floor(bi / batchInner) * aBatchStride2 + (bi % batchInner) * aBatchStride;
      for (let i = 0; i < m; i++) {
        let s = 0;
        for (let kk = 0; kk < k; kk++) s += A[ao + (transA ? kk * lda + i : i * lda + kk)]!;
        E[eo + bi * m + i] = s;
      }
    }
  }
  return out;
};
