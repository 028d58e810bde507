import type { MatmulAttrs } from './index.js';
import { readBinding } from '../cast/wgsl.js';

/** MatmulAttrs' optional strides with their defaults filled in (dense rows, one batch level, dense C). */
export interface MatmulLayout {
  lda: number;
  ldb: number;
  batchInner: number;
  aBatchStride2: number;
  bBatchStride2: number;
  ldc: number;
  cBatchStride: number;
  cBatchStride2: number;
  alpha: number;
}

export function matmulLayout(p: MatmulAttrs): MatmulLayout {
  const batchInner = Math.max(1, p.batchInner ?? p.batch);
  return {
    lda: p.lda ?? (p.transA ? p.m : p.k),
    ldb: p.ldb ?? (p.transB ? p.k : p.n),
    batchInner,
    aBatchStride2: p.aBatchStride2 ?? 0,
    bBatchStride2: p.bBatchStride2 ?? 0,
    ldc: p.ldc ?? p.n,
    cBatchStride: p.cBatchStride ?? p.m * p.n,
    cBatchStride2: p.cBatchStride2 ?? batchInner * p.m * p.n,
    alpha: p.alpha ?? 1,
  };
}

/**
 * Bits of the uniform block's `flags`: which epilogue terms a kernel built with a runtime epilogue
 * (the subgroup matmul; the window conv kernels, which have no per-row bias) adds. Kernels that
 * choose their epilogue at compile time ignore them.
 */
export const EPILOGUE_BIAS = 1, EPILOGUE_BIAS_ROWS = 2, EPILOGUE_ADDEND = 4;

/** The flags word for a product with these epilogue terms. */
export function epilogueFlags(bias: boolean, biasRows: boolean, addend: boolean): number {
  return (bias ? EPILOGUE_BIAS : 0) | (bias && biasRows ? EPILOGUE_BIAS_ROWS : 0) | (addend ? EPILOGUE_ADDEND : 0);
}

/** The uniform words of a matmul dispatch (the layout of MATMUL_UNIFORMS_WGSL), alpha as f32 bits. */
export function matmulUniformWords(p: MatmulAttrs, aoff: number, boff: number, z0: number, biasOff: number, addOff: number, sumOff = 0, flags = 0): number[] {
  const l = matmulLayout(p);
  const alphaBits = new Uint32Array(new Float32Array([l.alpha]).buffer)[0]!;
  return [p.m, p.n, p.k, p.batch, aoff, boff, p.aBatchStride, p.bBatchStride, z0, l.lda, l.ldb, l.batchInner, l.aBatchStride2, l.bBatchStride2, l.ldc, l.cBatchStride, l.cBatchStride2, alphaBits, biasOff, addOff, sumOff, flags];
}

/** WGSL: start of batch bz's C block (two levels, like the operands'). */
export const MATMUL_C_BASE_WGSL = '(bz / u.binner) * u.cbs2 + (bz % u.binner) * u.cbs';

/** WGSL of matmul's uniform block, the same for every variant (the host writes one layout). */
export const MATMUL_UNIFORMS_WGSL =
  'struct U { m: u32, n: u32, k: u32, batch: u32, aoff: u32, boff: u32, abs: u32, bbs: u32, z0: u32, lda: u32, ldb: u32, binner: u32, abs2: u32, bbs2: u32, ldc: u32, cbs: u32, cbs2: u32, alpha: f32, biasoff: u32, doff: u32, eoff: u32, flags: u32 };';

/**
 * The uniform block's binding, after the storage buffers A, B, C and, when the product adds a bias
 * per column, the bias at binding 3, then the addend D, then E (A's row sums, MatmulAttrs.rowSumsA)
 * (the runtime binds the uniforms after the storage buffers).
 */
export function matmulUniformBinding(bias: boolean, addend = false, rowSums = false, biasF16 = false): string {
  const L: string[] = [];
  let b = 3;
  // the bias is read through bias_at (ops/cast/wgsl.ts): it may be stored as float16
  if (bias) L.push(readBinding(b++, 'bias', biasF16));
  // the addend D (C's layout, from its own offset): C = alpha · AB + bias + D
  if (addend) L.push(`@group(0) @binding(${b++}) var<storage, read> D: array<f32>;`);
  // E[eoff + batch · m + row] = Σ_k A[row, k]
  if (rowSums) L.push(`@group(0) @binding(${b++}) var<storage, read_write> E: array<f32>;`);
  L.push(`@group(0) @binding(${b}) var<uniform> u: U;`);
  return L.join('\n');
}
