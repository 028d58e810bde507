import type { MatmulAttrs } from './index.js';

/** MatmulAttrs' optional strides with their defaults filled in (dense rows, one batch level). */
export interface MatmulLayout {
  lda: number;
  ldb: number;
  batchInner: number;
  aBatchStride2: number;
  bBatchStride2: number;
}

export function matmulLayout(p: MatmulAttrs): MatmulLayout {
  return {
    lda: p.lda ?? (p.transA ? p.m : p.k),
    ldb: p.ldb ?? (p.transB ? p.k : p.n),
    batchInner: Math.max(1, p.batchInner ?? p.batch),
    aBatchStride2: p.aBatchStride2 ?? 0,
    bBatchStride2: p.bBatchStride2 ?? 0,
  };
}
