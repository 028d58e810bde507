import type { View } from '../backend.js';
import type { DType } from '../dtype.js';

/**
 * The contract of each kernel every backend implements. Ops (ops/) prepare the views so that
 * kernels stay simple: inputs of `elementwise` arrive already broadcast (stride 0 on broadcast dims).
 */
export interface ElementwiseAttrs {
  op: string;
  params?: number[];
  /** Output shape; every input view has this shape (broadcast strides). */
  shape: number[];
  /** Write into this view instead of allocating a contiguous output. */
  out?: View;
  outDtype?: DType;
}

/** Reduces the middle axis of a contiguous [outer, size, inner] view. */
export interface ReduceAttrs {
  op: 'sum' | 'max' | 'min' | 'argmax' | 'argmin';
  outer: number;
  size: number;
  inner: number;
}

/**
 * C[b] = op(A[b]) @ op(B[b]), C contiguous [batch, m, n]. A[b] starts at a.offset + b*aBatchStride and is
 * row-major [m, k] (or [k, m] when transA); B likewise [k, n] (or [n, k] when transB). Batch stride 0 broadcasts.
 */
export interface MatmulAttrs {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  aBatchStride: number;
  bBatchStride: number;
}

/** x contiguous [outer, size, inner], idx int32 [n] -> [outer, n, inner] (index_add: the reverse, summed). */
export interface IndexSelectAttrs {
  outer: number;
  size: number;
  inner: number;
  n: number;
}

export interface SoftmaxAttrs {
  rows: number;
  cols: number;
  log: boolean;
}

export interface RandomAttrs {
  dist: 'uniform' | 'normal' | 'bits';
  n: number;
  /** 64-bit seed as two u32 halves. */
  seedLo: number;
  seedHi: number;
  /** Counter base (in blocks of 4 numbers): successive calls never reuse counters. */
  counter: number;
  /** uniform: [low, high); normal: mean, std. */
  p0: number;
  p1: number;
}
