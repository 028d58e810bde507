import type { Backend, Storage, View } from './backend.js';
import type { AnyTypedArray, DType } from './dtype.js';
import { contiguousStrides, isContiguous, numel, fmtShape, type Shape } from './shape.js';
import { getBackend } from './context.js';
import { trackTensor, registerTensorClass, keep } from './scope.js';
import type { Node } from './autograd/node.js';
import * as E from './ops/elementwise.js';
import * as R from './ops/reduce.js';
import * as V from './ops/views.js';
import * as M from './ops/matmul.js';
import * as N from './ops/nn.js';
import * as I from './ops/indexing.js';
import { backward as runBackward, type BackwardOptions } from './autograd/backward.js';

let liveTensors = 0;
let nextId = 1;

// Safety net only: tensors should be disposed explicitly or by tidy().
const finalizer = new FinalizationRegistry<Storage>((s) => {
  liveTensors--;
  s.release();
});

export type TensorLike = Tensor | number;

/**
 * An n-dimensional array on a backend, with PyTorch-like autograd. Views (reshape, permute, slice,
 * expand…) share storage; kernels materialise a contiguous copy only when they need one.
 */
export class Tensor implements View {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  private _storage: Storage;
  private _disposed = false;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: Node | null = null;
  /** Optional name, used in error messages and by modules. */
  name?: string;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0, dtype?: DType) {
    this._storage = storage;
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    this.dtype = dtype ?? storage.dtype;
    liveTensors++;
    finalizer.register(this, storage, this);
    trackTensor(this);
  }

  /** A new handle on the same storage (one more reference). */
  static view(base: View, shape: Shape, strides: readonly number[], offset: number): Tensor {
    return new Tensor(base.storage.retain(), shape, strides, offset, base.dtype);
  }

  static liveCount(): number {
    return liveTensors;
  }

  get storage(): Storage {
    if (this._disposed) throw new Error(`tensor ${this.describe()} was used after dispose()`);
    return this._storage;
  }
  get backend(): Backend {
    return this._storage.backend;
  }
  get rank(): number {
    return this.shape.length;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  numel(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this._disposed;
  }
  get isLeaf(): boolean {
    return this.gradFn === null;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  describe(): string {
    return `${this.name ? `'${this.name}' ` : ''}${fmtShape(this.shape)} ${this.dtype}`;
  }
  toString(): string {
    return `Tensor(${this.describe()}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }

  /** Releases this handle. Storage is freed when no tensor, view or autograd node uses it. */
  dispose(): void {
    if (this._disposed) return;
    this._disposed = true;
    liveTensors--;
    finalizer.unregister(this);
    this._storage.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Another handle on the same data, not tracked by tidy() scopes (autograd saves these). */
  alias(): Tensor {
    return keep(Tensor.view(this, this.shape, this.strides, this.offset));
  }

  /** Marks this tensor as a leaf that accumulates gradients. */
  requiresGrad_(on = true): this {
    if (on && this.dtype !== 'float32') throw new TypeError(`only float tensors can require gradients (got ${this.dtype})`);
    this.requiresGrad = on;
    return this;
  }

  /** Reads the data back (awaits the device). */
  async data(): Promise<AnyTypedArray> {
    const t = this.isContiguous ? this : V.contiguous(this);
    try {
      return await t.backend.read(t.storage, t.offset, t.size);
    } finally {
      if (t !== this) t.dispose();
    }
  }
  /** Float data as Float32Array (int tensors are converted). */
  async dataF32(): Promise<Float32Array> {
    const d = await this.data();
    return d instanceof Float32Array ? d : Float32Array.from(d);
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item() needs a tensor with one element, got ${fmtShape(this.shape)}`);
    return (await this.data())[0]!;
  }
  /** Nested JS arrays. */
  async array(): Promise<unknown> {
    const d = Array.from(await this.data());
    const build = (dim: number, off: number): unknown => {
      if (dim === this.rank) return d[off];
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  backward(grad?: Tensor, opts?: BackwardOptions): void {
    runBackward(this, grad, opts);
  }
  /** A tensor sharing data with no autograd history. */
  detach(): Tensor {
    return Tensor.view(this, this.shape, this.strides, this.offset);
  }
  /** Copies this tensor to another backend (e.g. to compare CPU and WebGPU). */
  async to(backend: Backend): Promise<Tensor> {
    const d = await this.data();
    return new Tensor(backend.upload(d), this.shape);
  }

  // elementwise
  add(o: TensorLike): Tensor { return E.add(this, o); }
  sub(o: TensorLike): Tensor { return E.sub(this, o); }
  mul(o: TensorLike): Tensor { return E.mul(this, o); }
  div(o: TensorLike): Tensor { return E.div(this, o); }
  pow(o: TensorLike): Tensor { return E.pow(this, o); }
  neg(): Tensor { return E.neg(this); }
  exp(): Tensor { return E.exp(this); }
  log(): Tensor { return E.log(this); }
  sqrt(): Tensor { return E.sqrt(this); }
  rsqrt(): Tensor { return E.rsqrt(this); }
  abs(): Tensor { return E.abs(this); }
  sin(): Tensor { return E.sin(this); }
  cos(): Tensor { return E.cos(this); }
  tanh(): Tensor { return E.tanh(this); }
  sigmoid(): Tensor { return E.sigmoid(this); }
  relu(): Tensor { return E.relu(this); }
  silu(): Tensor { return E.silu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return E.gelu(this, approximate); }
  quickGelu(): Tensor { return E.quickGelu(this); }
  square(): Tensor { return E.square(this); }
  clamp(min?: number, max?: number): Tensor { return E.clamp(this, min, max); }
  maximum(o: TensorLike): Tensor { return E.maximum(this, o); }
  minimum(o: TensorLike): Tensor { return E.minimum(this, o); }
  lt(o: TensorLike): Tensor { return E.lt(this, o); }
  le(o: TensorLike): Tensor { return E.le(this, o); }
  gt(o: TensorLike): Tensor { return E.gt(this, o); }
  ge(o: TensorLike): Tensor { return E.ge(this, o); }
  eq(o: TensorLike): Tensor { return E.eq(this, o); }
  ne(o: TensorLike): Tensor { return E.ne(this, o); }
  // reductions
  sum(dim?: number | number[], keepdim = false): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return R.mean(this, dim, keepdim); }
  max(dim?: number | number[], keepdim = false): Tensor { return R.max(this, dim, keepdim); }
  min(dim?: number | number[], keepdim = false): Tensor { return R.min(this, dim, keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return R.argmax(this, dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return R.argmin(this, dim, keepdim); }
  var(dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor { return R.variance(this, dim, opts); }
  std(dim?: number | number[], opts?: { unbiased?: boolean; keepdim?: boolean }): Tensor { return R.std(this, dim, opts); }
  logsumexp(dim: number | number[], keepdim = false): Tensor { return R.logsumexp(this, dim, keepdim); }
  // linear algebra
  matmul(o: Tensor): Tensor { return M.matmul(this, o); }
  // views and shape
  reshape(...shape: (number | number[])[]): Tensor { return V.reshape(this, shape.flat()); }
  view(...shape: (number | number[])[]): Tensor { return V.reshape(this, shape.flat()); }
  flatten(startDim = 0, endDim = -1): Tensor { return V.flatten(this, startDim, endDim); }
  permute(...dims: (number | number[])[]): Tensor { return V.permute(this, dims.flat()); }
  transpose(d0: number, d1: number): Tensor { return V.transpose(this, d0, d1); }
  t(): Tensor { return V.transpose(this, -2, -1); }
  get T(): Tensor { return V.transpose(this, -2, -1); }
  narrow(dim: number, start: number, length: number): Tensor { return V.narrow(this, dim, start, length); }
  /** Python-like slicing per dim: [start, end) with negative indices; `null` keeps the dim whole. */
  slice(...ranges: ([number, number] | [number] | null)[]): Tensor { return V.slice(this, ranges); }
  expand(...shape: (number | number[])[]): Tensor { return V.expand(this, shape.flat()); }
  broadcastTo(shape: Shape): Tensor { return V.expand(this, [...shape]); }
  squeeze(dim?: number): Tensor { return V.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return V.unsqueeze(this, dim); }
  contiguous(): Tensor { return V.contiguous(this); }
  clone(): Tensor { return V.clone(this); }
  split(sizes: number | number[], dim = 0): Tensor[] { return V.split(this, sizes, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return V.chunk(this, chunks, dim); }
  pad(pads: number[], value = 0): Tensor { return V.pad(this, pads, value); }
  // nn
  softmax(dim = -1): Tensor { return N.softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return N.logSoftmax(this, dim); }
  indexSelect(dim: number, index: Tensor): Tensor { return I.indexSelect(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return I.gather(this, dim, index); }
  toFloat(): Tensor { return E.cast(this, 'float32'); }
  toInt(): Tensor { return E.cast(this, 'int32'); }
}

registerTensorClass(Tensor);

/** Creates a tensor on the default backend from an array of data. */
export function fromTyped(data: AnyTypedArray, shape: Shape, backend: Backend = getBackend()): Tensor {
  if (numel(shape) !== data.length) {
    throw new RangeError(`data of length ${data.length} does not fit shape ${fmtShape(shape)} (${numel(shape)} elements)`);
  }
  return new Tensor(backend.upload(data), shape);
}
