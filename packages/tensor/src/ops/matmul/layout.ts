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

/** WGSL of matmul's uniform block, the same for every variant (the host writes one layout). */
export const MATMUL_UNIFORMS_WGSL = 'struct U { m: u32, n: u32, k: u32, batch: u32, aoff: u32, boff: u32, abs: u32, bbs: u32, z0: u32, lda: u32, ldb: u32, binner: u32, abs2: u32, bbs2: u32, p0: u32, p1: u32 };';
