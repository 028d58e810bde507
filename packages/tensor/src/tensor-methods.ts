/**
 * The op methods of Tensor (`x.add(y)`, `x.sum(1)`, `x.matmul(w)`, `x.backward()`…): declared on the
 * class by interface merging and installed on its prototype here. tensor.ts imports no op, the ops
 * import tensor.ts, and this module imports both; index.ts loads it, so every tensor made through
 * the package has its methods.
 */
import { Tensor, type TensorLike } from './tensor.js';
import type { Shape } from './shape.js';
import * as E from './ops/elementwise/index.js';
import { ELEMENTWISE_METHODS, type ElementwiseMethod } from './ops/elementwise/table.js';
import * as R from './ops/reduce/index.js';
import * as V from './ops/views.js';
import * as M from './ops/matmul/index.js';
import * as N from './ops/nn.js';
import * as Sm from './ops/softmax/index.js';
import * as I from './ops/indexing/index.js';
import * as C from './ops/cast/index.js';
import type { DType } from './dtype.js';
import { backward as runBackward, type BackwardOptions } from './autograd/backward.js';

/** One method per table row with `method`: `x.relu()` runs the row and, backward, its `_grad` row. */
type RowMethods = { readonly [M in ElementwiseMethod]: () => Tensor };

declare module './tensor.js' {
  interface Tensor extends RowMethods {
    /** Reverse-mode autograd from this tensor (a scalar, or give `grad`). */
    backward(grad?: Tensor, opts?: BackwardOptions): void;
    // elementwise
    add(o: TensorLike): Tensor;
    sub(o: TensorLike): Tensor;
    mul(o: TensorLike): Tensor;
    div(o: TensorLike): Tensor;
    pow(o: TensorLike): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    abs(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    quickGelu(): Tensor;
    square(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    maximum(o: TensorLike): Tensor;
    minimum(o: TensorLike): Tensor;
    lt(o: TensorLike): Tensor;
    le(o: TensorLike): Tensor;
    gt(o: TensorLike): Tensor;
    ge(o: TensorLike): Tensor;
    eq(o: TensorLike): Tensor;
    ne(o: TensorLike): Tensor;
    // reductions
    sum(dim?: number | number[], keepdim?: boolean): Tensor;
    mean(dim?: number | number[], keepdim?: boolean): Tensor;
    max(dim?: number | number[], keepdim?: boolean): Tensor;
    min(dim?: number | number[], keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    argmin(dim?: number, keepdim?: boolean): Tensor;
    var(dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor;
    std(dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor;
    logsumexp(dim: number | number[], keepdim?: boolean): Tensor;
    // linear algebra
    matmul(o: Tensor): Tensor;
    // views and shape
    reshape(...shape: (number | number[])[]): Tensor;
    view(...shape: (number | number[])[]): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    permute(...dims: (number | number[])[]): Tensor;
    transpose(d0: number, d1: number): Tensor;
    t(): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    /** Python-like slicing per dim: [start, end) with negative indices; `null` keeps the dim whole. */
    slice(...ranges: ([number, number] | [number] | null)[]): Tensor;
    expand(...shape: (number | number[])[]): Tensor;
    broadcastTo(shape: Shape): Tensor;
    squeeze(dim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    split(sizes: number | number[], dim?: number): Tensor[];
    chunk(chunks: number, dim?: number): Tensor[];
    pad(pads: number[], value?: number): Tensor;
    // nn
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    toFloat(): Tensor;
    toInt(): Tensor;
    /**
     * This float tensor in another float dtype ('float32' | 'float16'): a new contiguous tensor, or
     * a new handle on the same data when the dtype already matches (PyTorch returns self); the
     * gradient is cast back (f32 for an f16 input). Also reached as x.to(dtype).
     */
    toDtype(dtype: DType): Tensor;
    /** toDtype('float16') (PyTorch's x.half()); a float16 tensor is returned as a new handle, no copy. */
    half(): Tensor;
    /** toDtype('float32') (PyTorch's x.float()); a float32 tensor is returned as a new handle, no copy. */
    float(): Tensor;
    /** The last two dims swapped. */
    readonly T: Tensor;
  }
}

const methods = {
  backward(this: Tensor, grad?: Tensor, opts?: BackwardOptions): void { runBackward(this, grad, opts); },
  // elementwise
  add(this: Tensor, o: TensorLike): Tensor { return E.add(this, o); },
  sub(this: Tensor, o: TensorLike): Tensor { return E.sub(this, o); },
  mul(this: Tensor, o: TensorLike): Tensor { return E.mul(this, o); },
  div(this: Tensor, o: TensorLike): Tensor { return E.div(this, o); },
  pow(this: Tensor, o: TensorLike): Tensor { return E.pow(this, o); },
  neg(this: Tensor): Tensor { return E.neg(this); },
  exp(this: Tensor): Tensor { return E.exp(this); },
  log(this: Tensor): Tensor { return E.log(this); },
  sqrt(this: Tensor): Tensor { return E.sqrt(this); },
  rsqrt(this: Tensor): Tensor { return E.rsqrt(this); },
  abs(this: Tensor): Tensor { return E.abs(this); },
  sin(this: Tensor): Tensor { return E.sin(this); },
  cos(this: Tensor): Tensor { return E.cos(this); },
  gelu(this: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor { return E.gelu(this, approximate); },
  quickGelu(this: Tensor): Tensor { return E.quickGelu(this); },
  square(this: Tensor): Tensor { return E.square(this); },
  clamp(this: Tensor, min?: number, max?: number): Tensor { return E.clamp(this, min, max); },
  maximum(this: Tensor, o: TensorLike): Tensor { return E.maximum(this, o); },
  minimum(this: Tensor, o: TensorLike): Tensor { return E.minimum(this, o); },
  lt(this: Tensor, o: TensorLike): Tensor { return E.lt(this, o); },
  le(this: Tensor, o: TensorLike): Tensor { return E.le(this, o); },
  gt(this: Tensor, o: TensorLike): Tensor { return E.gt(this, o); },
  ge(this: Tensor, o: TensorLike): Tensor { return E.ge(this, o); },
  eq(this: Tensor, o: TensorLike): Tensor { return E.eq(this, o); },
  ne(this: Tensor, o: TensorLike): Tensor { return E.ne(this, o); },
  // reductions
  sum(this: Tensor, dim?: number | number[], keepdim = false): Tensor { return R.sum(this, dim, keepdim); },
  mean(this: Tensor, dim?: number | number[], keepdim = false): Tensor { return R.mean(this, dim, keepdim); },
  max(this: Tensor, dim?: number | number[], keepdim = false): Tensor { return R.max(this, dim, keepdim); },
  min(this: Tensor, dim?: number | number[], keepdim = false): Tensor { return R.min(this, dim, keepdim); },
  argmax(this: Tensor, dim?: number, keepdim = false): Tensor { return R.argmax(this, dim, keepdim); },
  argmin(this: Tensor, dim?: number, keepdim = false): Tensor { return R.argmin(this, dim, keepdim); },
  var(this: Tensor, dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor { return R.variance(this, dim, opts); },
  std(this: Tensor, dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor { return R.std(this, dim, opts); },
  logsumexp(this: Tensor, dim: number | number[], keepdim = false): Tensor { return R.logsumexp(this, dim, keepdim); },
  // linear algebra
  matmul(this: Tensor, o: Tensor): Tensor { return M.matmul(this, o); },
  // views and shape
  reshape(this: Tensor, ...shape: (number | number[])[]): Tensor { return V.reshape(this, shape.flat()); },
  view(this: Tensor, ...shape: (number | number[])[]): Tensor { return V.reshape(this, shape.flat()); },
  flatten(this: Tensor, startDim = 0, endDim = -1): Tensor { return V.flatten(this, startDim, endDim); },
  permute(this: Tensor, ...dims: (number | number[])[]): Tensor { return V.permute(this, dims.flat()); },
  transpose(this: Tensor, d0: number, d1: number): Tensor { return V.transpose(this, d0, d1); },
  t(this: Tensor): Tensor { return V.transpose(this, -2, -1); },
  narrow(this: Tensor, dim: number, start: number, length: number): Tensor { return V.narrow(this, dim, start, length); },
  slice(this: Tensor, ...ranges: ([number, number] | [number] | null)[]): Tensor { return V.slice(this, ranges); },
  expand(this: Tensor, ...shape: (number | number[])[]): Tensor { return V.expand(this, shape.flat()); },
  broadcastTo(this: Tensor, shape: Shape): Tensor { return V.expand(this, [...shape]); },
  squeeze(this: Tensor, dim?: number): Tensor { return V.squeeze(this, dim); },
  unsqueeze(this: Tensor, dim: number): Tensor { return V.unsqueeze(this, dim); },
  contiguous(this: Tensor): Tensor { return V.contiguous(this); },
  clone(this: Tensor): Tensor { return V.clone(this); },
  split(this: Tensor, sizes: number | number[], dim = 0): Tensor[] { return V.split(this, sizes, dim); },
  chunk(this: Tensor, chunks: number, dim = 0): Tensor[] { return V.chunk(this, chunks, dim); },
  pad(this: Tensor, pads: number[], value = 0): Tensor { return V.pad(this, pads, value); },
  // nn
  softmax(this: Tensor, dim = -1): Tensor { return Sm.softmax(this, dim); },
  logSoftmax(this: Tensor, dim = -1): Tensor { return Sm.logSoftmax(this, dim); },
  indexSelect(this: Tensor, dim: number, index: Tensor): Tensor { return I.indexSelect(this, dim, index); },
  gather(this: Tensor, dim: number, index: Tensor): Tensor { return I.gather(this, dim, index); },
  toFloat(this: Tensor): Tensor { return E.cast(this, 'float32'); },
  toInt(this: Tensor): Tensor { return E.cast(this, 'int32'); },
  toDtype(this: Tensor, dtype: DType): Tensor { return this.dtype === dtype ? this.share() : C.castTo(this, dtype); },
  half(this: Tensor): Tensor { return this.dtype === 'float16' ? this.share() : C.castTo(this, 'float16'); },
  float(this: Tensor): Tensor { return this.dtype === 'float32' ? this.share() : this.dtype === 'float16' ? C.castTo(this, 'float32') : E.cast(this, 'float32'); },
};

for (const row of ELEMENTWISE_METHODS) {
  Object.defineProperty(Tensor.prototype, row, {
    value(this: Tensor): Tensor { return E.rowOp(row, this); },
    writable: true, configurable: true, enumerable: false,
  });
}
for (const [name, fn] of Object.entries(methods)) {
  Object.defineProperty(Tensor.prototype, name, { value: fn, writable: true, configurable: true, enumerable: false });
}
Object.defineProperty(Tensor.prototype, 'T', {
  get(this: Tensor): Tensor { return V.transpose(this, -2, -1); },
  configurable: true,
  enumerable: false,
});
