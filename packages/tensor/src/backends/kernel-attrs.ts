import type { Storage, View } from '../backend.js';
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

/**
 * x contiguous [outer, size, inner], idx int32 [n] -> [outer, n, inner] (index_add: the reverse, summed).
 * index_select refuses ids outside [0, size) (see index_check); `op` and `dim` name them in the error.
 */
export interface IndexSelectAttrs {
  outer: number;
  size: number;
  inner: number;
  n: number;
  op?: string;
  dim?: number;
}

/**
 * index_check: input [ids] (contiguous int32, n elements); refuses any id outside [0, size) (but `ignore`) with
 * indexOutOfRange(op, what, id, size): the CPU throws at once, WebGPU flags it on the device and the
 * runtime throws at the next readback or sync (WebGPURuntime.boundsCheck).
 */
export interface IndexCheckAttrs {
  n: number;
  size: number;
  op: string;
  what: string;
  /** An id that is allowed besides [0, size) (crossEntropy's ignoreIndex); absent: none. */
  ignore?: number;
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

/**
 * Normalisation over statistic rows of a contiguous x. Element j of row r lives at
 * (r / rowDiv) * rowStrideHi + (r % rowDiv) * rowStrideLo + (j / inner) * outerStride + j % inner,
 * and uses affine parameter (r % rowDiv) * affRow + (j / inner) * affOuter + (j % inner) * affInner.
 * GroupNorm [N, C, S]: rows N*G; LayerNorm [R, M]: rows R, inner M; BatchNorm [N, C, S]: rows C.
 */
export interface NormLayout {
  rows: number;
  /** Elements per row (outer count * inner). */
  count: number;
  inner: number;
  rowDiv: number;
  rowStrideHi: number;
  rowStrideLo: number;
  outerStride: number;
  affRow: number;
  affOuter: number;
  affInner: number;
}

/**
 * norm_forward: inputs [x, weight?, bias?, stats?, runningMean?, runningVar?] → [y, stats].
 * stats is [rows, 2] = (mean, rstd); with `computeStats` false it is an input (e.g. eval BatchNorm).
 * With `updateRunning`, running stats (length rows) are updated in place: r = (1-m) r + m batch
 * (variance unbiased).
 */
export interface NormForwardAttrs extends NormLayout {
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
  computeStats: boolean;
  updateRunning: boolean;
  momentum: number;
}

/**
 * norm_backward: inputs [x, g, stats, weight?] → dx. With `constStats` (stats did not depend on x)
 * dx = g * w * rstd; else dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) per row.
 */
export interface NormBackwardAttrs extends NormLayout {
  hasWeight: boolean;
  constStats: boolean;
}

/**
 * norm_affine_grad: inputs [x, g, stats] → [dweight, dbias] (each [size]). Affine index a sums the
 * elements p * pStride + a * aStride + s (p < outer, s < inner) whose statistic row is
 * p * rowP + floor(a / aDiv).
 */
export interface NormAffineGradAttrs {
  size: number;
  outer: number;
  inner: number;
  pStride: number;
  aStride: number;
  rowP: number;
  aDiv: number;
}

/**
 * Fused attention over contiguous q [BH, Lq, D], k [BH, Lk, D], v [BH, Lk, Dv] (offsets from the
 * views). mask: 'none', 'causal' (key j visible to query i when j <= i) or 'add' (an additive view,
 * input 3, read through its strides [bStride, hStride, iStride, jStride] with H heads).
 */
export interface AttentionAttrs {
  bh: number;
  heads: number;
  lq: number;
  lk: number;
  d: number;
  dv: number;
  scale: number;
  mask: 'none' | 'causal' | 'add';
  maskStrides?: [number, number, number, number];
}

/** attention_forward: inputs [q, k, v, mask?] → [out [BH, Lq, Dv], lse [BH, Lq]]. */
export type AttentionForwardAttrs = AttentionAttrs;
/** attention_backward: inputs [q, k, v, out, lse, dout, mask?] → [dq, dk, dv]. */
export type AttentionBackwardAttrs = AttentionAttrs;

/**
 * adam_step (in place): inputs [param, grad, expAvg, expAvgSq], all `n` elements. Scalars are the
 * ones torch computes in double: stepSize = lr / (1 - beta1^t), bc2Sqrt = sqrt(1 - beta2^t),
 * decay = 1 - lr * wd (decoupled) applied to the param first; l2 = wd added as wd * param to the grad.
 */
export interface AdamStepAttrs {
  n: number;
  beta1: number;
  beta2: number;
  eps: number;
  stepSize: number;
  bc2Sqrt: number;
  decay: number;
  l2: number;
  maximize: boolean;
}

/** sgd_step (in place): inputs [param, grad, momentumBuf?]; `first` initialises the buffer with the grad. */
export interface SgdStepAttrs {
  n: number;
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  first: boolean;
}

/**
 * sum_squares: input [x] (n contiguous elements) → writes `parts` partial sums of squares into `out`
 * (a float32 view) starting at out.offset; part p covers [p * ceil(n / parts), (p + 1) * ceil(n / parts)).
 */
export interface SumSquaresAttrs {
  n: number;
  parts: number;
  out: View;
}

/** clip_scale (in place): inputs [grad, totalNorm (1 element)]; grad *= min(maxNorm / (norm + 1e-6), 1). */
export interface ClipScaleAttrs {
  n: number;
  maxNorm: number;
}

/**
 * Geometry of a 2-D convolution (NCHW, contiguous operands, offsets from the views):
 * x [n, c, h, w], weight [k, c / groups, kh, kw], y [n, k, ho, wo], with
 * y[b, o, oy, ox] = sum over (ci, r, s) of x[b, g·Cg + ci, oy·strideH − padTop + r·dilH, ox·strideW − padLeft + s·dilW] · w[o, ci, r, s]
 * (g = o / (k / groups); out-of-range taps are zero). Padding bottom/right is implied by ho/wo.
 * Kernels: conv2d [x, weight, bias?] → y; conv2d_grad_input [dy, weight] → dx; conv2d_grad_weight [x, dy] → dweight.
 */
export interface Conv2dAttrs {
  n: number;
  c: number;
  h: number;
  w: number;
  k: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilH: number;
  dilW: number;
  padTop: number;
  padLeft: number;
  groups: number;
  /** conv2d only: input 2 is a bias [k]. */
  hasBias?: boolean;
}

/**
 * Max / average pooling over planes [planes, h, w] → [planes, ho, wo]; window of output (oy, ox) starts at
 * (oy·strideH − padH, ox·strideW − padW) with taps every dil (avg: dil 1). Kernels: pool2d [x] → max: [y, argmax
 * (int32 index into the plane)], avg: [y]; pool2d_backward [g, argmax?] → dx. Average divisor as PyTorch:
 * divisorOverride, else the window clipped to the padded input (countIncludePad) or to the input.
 */
export interface Pool2dAttrs {
  mode: 'max' | 'avg';
  planes: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  countIncludePad: boolean;
  /** 0: none. */
  divisorOverride: number;
}

/**
 * adaptive_avg_pool2d [x planes, h, w] → [planes, ho, wo] (and its _backward [g] → dx): output oy averages rows
 * floor(oy·h/ho) .. ceil((oy+1)·h/ho) − 1, likewise columns.
 */
export interface AdaptivePool2dAttrs {
  planes: number;
  h: number;
  w: number;
  ho: number;
  wo: number;
}

/**
 * The kernel contract: every kernel's attributes and what it returns (inputs are views, listed in
 * each attrs type's comment). Backend.run is typed by this table, and each backend's kernel table
 * (backends/<backend>/kernels/index.ts) must implement every entry: a missing kernel is a compile
 * error. `void` kernels write in place.
 */
export interface Kernels {
  /** Returns the new output storage, or nothing when `attrs.out` is given (written in place). */
  elementwise: { attrs: ElementwiseAttrs; out: Storage | void };
  reduce: { attrs: ReduceAttrs; out: Storage };
  matmul: { attrs: MatmulAttrs; out: Storage };
  index_check: { attrs: IndexCheckAttrs; out: void };
  index_select: { attrs: IndexSelectAttrs; out: Storage };
  index_add: { attrs: IndexSelectAttrs; out: Storage };
  softmax: { attrs: SoftmaxAttrs; out: Storage };
  softmax_backward: { attrs: SoftmaxAttrs; out: Storage };
  random: { attrs: RandomAttrs; out: Storage };
  norm_forward: { attrs: NormForwardAttrs; out: Storage[] };
  norm_backward: { attrs: NormBackwardAttrs; out: Storage };
  norm_affine_grad: { attrs: NormAffineGradAttrs; out: Storage[] };
  attention_forward: { attrs: AttentionForwardAttrs; out: Storage[] };
  attention_backward: { attrs: AttentionBackwardAttrs; out: Storage[] };
  adam_step: { attrs: AdamStepAttrs; out: void };
  sgd_step: { attrs: SgdStepAttrs; out: void };
  sum_squares: { attrs: SumSquaresAttrs; out: void };
  clip_scale: { attrs: ClipScaleAttrs; out: void };
  conv2d: { attrs: Conv2dAttrs; out: Storage };
  conv2d_grad_input: { attrs: Conv2dAttrs; out: Storage };
  conv2d_grad_weight: { attrs: Conv2dAttrs; out: Storage };
  /** max: [y, argmax]; avg: [y]. */
  pool2d: { attrs: Pool2dAttrs; out: Storage[] };
  pool2d_backward: { attrs: Pool2dAttrs; out: Storage };
  adaptive_avg_pool2d: { attrs: AdaptivePool2dAttrs; out: Storage };
  adaptive_avg_pool2d_backward: { attrs: AdaptivePool2dAttrs; out: Storage };
}
export type KernelName = keyof Kernels;
