import type { Storage, View } from '../backend.js';
// attrs of the ops that live in one folder each (ops/<op>/: definition, attrs, backward, cpu.ts, webgpu.ts)
import type { ElementwiseAttrs } from '../ops/elementwise/index.js';
export type { ElementwiseAttrs };
import type { ReduceAttrs } from '../ops/reduce/index.js';
export type { ReduceAttrs };
import type { SoftmaxAttrs } from '../ops/softmax/index.js';
export type { SoftmaxAttrs };
import type { IndexSelectAttrs, IndexCheckAttrs } from '../ops/indexing/index.js';
export type { IndexSelectAttrs, IndexCheckAttrs };
import type { RandomAttrs } from '../ops/random/index.js';
export type { RandomAttrs };
import type { MatmulAttrs } from '../ops/matmul/index.js';
export type { MatmulAttrs };
import type { Conv2dAttrs } from '../ops/conv/index.js';
export type { Conv2dAttrs };
import type { Pool2dAttrs, AdaptivePool2dAttrs, UpsampleNearestAttrs } from '../ops/pool/index.js';
export type { Pool2dAttrs, AdaptivePool2dAttrs, UpsampleNearestAttrs };
import type { NormLayout, NormForwardAttrs, NormBackwardAttrs, NormAffineGradAttrs, NormBackwardAffineAttrs } from '../ops/norm/index.js';
export type { NormLayout, NormForwardAttrs, NormBackwardAttrs, NormAffineGradAttrs };
import type { AttentionAttrs, AttentionForwardAttrs, AttentionBackwardAttrs } from '../ops/attention/index.js';
export type { AttentionAttrs, AttentionForwardAttrs, AttentionBackwardAttrs };
import type { AdamStepAttrs, SgdStepAttrs, SumSquaresAttrs, ClipScaleAttrs } from '../ops/optim/index.js';
export type { AdamStepAttrs, SgdStepAttrs, SumSquaresAttrs, ClipScaleAttrs };
import type { CastAttrs } from '../ops/cast/index.js';
export type { CastAttrs };
import type { ConcatAttrs } from '../ops/concat/index.js';
export type { ConcatAttrs };
import type { DType } from '../dtype.js';

/**
 * The kernel contract: every kernel's attributes and what it returns (inputs are views, listed in
 * each attrs type's comment). Backend.run is typed by this table, and each backend's kernel table
 * (backends/<backend>/kernels/index.ts) must implement every entry: a missing kernel is a compile
 * error. `void` kernels write in place.
 */
export interface Kernels {
  /** Returns the new output storage, or nothing when `attrs.out` is given (written in place). */
  elementwise: { attrs: ElementwiseAttrs; out: Storage | void };
  /** float32 ↔ float16 (ops/cast); returns the new storage, or nothing when `attrs.out` is given. */
  cast: { attrs: CastAttrs; out: Storage | void };
  reduce: { attrs: ReduceAttrs; out: Storage };
  /** Inputs: one [outer, size_k, inner] view each (any strides, one dtype); a new contiguous output. */
  concat: { attrs: ConcatAttrs; out: Storage };
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
  norm_backward_affine: { attrs: NormBackwardAffineAttrs; out: Storage[] };
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
  upsample_nearest: { attrs: UpsampleNearestAttrs; out: Storage };
  upsample_nearest_backward: { attrs: UpsampleNearestAttrs; out: Storage };
}
export type KernelName = keyof Kernels;
