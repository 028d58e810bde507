import type { Backend, Storage, View } from './backend.js';
import type { AnyTypedArray, DType } from './dtype.js';
import { f16ToF32 } from './io/half.js';
import { contiguousStrides, isContiguous, numel, fmtShape, type Shape } from './shape.js';
import { getBackend } from './context.js';
import { trackTensor, keep, TENSOR } from './scope.js';
import type { Node } from './autograd/node.js';
import { record } from './autograd/record.js';

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
 *
 * This module holds the tensor's data and identity (storage, shape, handles, disposal) and imports no
 * op. The op methods (`add`, `sum`, `matmul`, `reshape`, `backward`…) are declared and installed on the
 * prototype by tensor-methods.ts, which the package index loads: that keeps the import graph free of
 * the circle tensor -> ops -> tensor.
 */
export class Tensor implements View {
  /** Brand read by tidy() to find the tensors a scope returns (scope.ts cannot import this class). */
  readonly [TENSOR] = true;
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

  /**
   * @internal Moves this handle onto `storage` at element `offset`, where the caller has already copied
   * its data (the optimizers' parameter arena, ops/optim/arena.ts); the old storage is released.
   * Only for a live, contiguous leaf that is the one handle on its storage (no view or autograd node
   * could then still see the old data): the arena checks that before moving a parameter.
   */
  _relocate(storage: Storage, offset: number): void {
    const old = this.storage;
    storage.retain();
    finalizer.unregister(this);
    finalizer.register(this, storage, this);
    this._storage = storage;
    (this as { offset: number }).offset = offset;
    old.release();
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

  /**
   * A new handle on the same data, tracked by tidy() like any op result, with no kernel and no copy:
   * gradients flow through it to this tensor, and disposing either handle leaves the other valid.
   * Use it where a function must return a tensor the caller owns (instead of `x.mul(1)`).
   */
  share(): Tensor {
    return record(Tensor.view(this, this.shape, this.strides, this.offset), 'share', [this], (g) => [g]);
  }

  /** Marks this tensor as a leaf that accumulates gradients (a float16 leaf gets a float32 gradient). */
  requiresGrad_(on = true): this {
    if (on && this.dtype !== 'float32' && this.dtype !== 'float16') throw new TypeError(`only float tensors can require gradients (got ${this.dtype})`);
    this.requiresGrad = on;
    return this;
  }

  /**
   * Reads the data back (awaits the device) as the dtype's typed array: float16 comes back as its
   * IEEE bit patterns (Uint16Array, what safetensors stores); use dataF32() for the values.
   */
  async data(): Promise<AnyTypedArray> {
    const t = this.isContiguous ? this : this.contiguous();
    try {
      return await t.backend.read(t.storage, t.offset, t.size);
    } finally {
      if (t !== this) t.dispose();
    }
  }
  /** The values as a Float32Array (float16 decoded exactly, int tensors converted). */
  async dataF32(): Promise<Float32Array> {
    const d = await this.data();
    if (this.dtype === 'float16') return f16ToF32(d as Uint16Array);
    return d instanceof Float32Array ? d : Float32Array.from(d);
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item() needs a tensor with one element, got ${fmtShape(this.shape)}`);
    return (this.dtype === 'float16' ? await this.dataF32() : await this.data())[0]!;
  }
  /** Nested JS arrays (float16 as numbers). */
  async array(): Promise<unknown> {
    const d = Array.from(this.dtype === 'float16' ? await this.dataF32() : await this.data());
    const build = (dim: number, off: number): unknown => {
      if (dim === this.rank) return d[off];
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim]! }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  /** A tensor sharing data with no autograd history. */
  detach(): Tensor {
    return Tensor.view(this, this.shape, this.strides, this.offset);
  }
  /**
   * `to('float16' | 'float32')`: this tensor converted to that float dtype (an op with autograd; see
   * toDtype). `to(backend)`: a copy on another backend, same dtype (e.g. to compare CPU and WebGPU).
   */
  to(dtype: DType): Tensor;
  to(backend: Backend): Promise<Tensor>;
  to(target: DType | Backend): Tensor | Promise<Tensor> {
    if (typeof target === 'string') return this.toDtype(target);
    return this.toBackend(target);
  }
  private async toBackend(backend: Backend): Promise<Tensor> {
    const d = await this.data();
    return new Tensor(backend.upload(d), this.shape);
  }
}


/** Creates a tensor on the default backend from an array of data. */
export function fromTyped(data: AnyTypedArray, shape: Shape, backend: Backend = getBackend()): Tensor {
  if (numel(shape) !== data.length) {
    throw new RangeError(`data of length ${data.length} does not fit shape ${fmtShape(shape)} (${numel(shape)} elements)`);
  }
  return new Tensor(backend.upload(data), shape);
}
