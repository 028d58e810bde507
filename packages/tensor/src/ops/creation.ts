import { Tensor } from '../tensor.js';
import type { Backend, Storage } from '../backend.js';
import { allocTyped, type AnyTypedArray, type DType } from '../dtype.js';
import { assertShape, numel, fmtShape, contiguousStrides } from '../shape.js';
import { getBackend } from '../context.js';
import { defaultGenerator, type Generator } from '../random/generator.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

/** Applies requiresGrad from the options (shared with ops/random). */
export function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  assertShape(shape);
  const be = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? 'float32';
  const n = numel(shape);
  const storage = be.alloc(dtype, n);
  if (n > 0) {
    be.run('elementwise', [], { op: 'fill', params: [value], shape: [n], out: { storage, shape: [n], strides: [1], offset: 0, dtype } });
  }
  return finish(new Tensor(storage, shape), opts);
}
export const zeros = (shape: readonly number[], opts: CreateOptions = {}): Tensor => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts: CreateOptions = {}): Tensor => full(shape, 1, opts);
export const zerosLike = (t: Tensor, opts: CreateOptions = {}): Tensor => full(t.shape, 0, { dtype: t.dtype, backend: t.backend, ...opts });
export const onesLike = (t: Tensor, opts: CreateOptions = {}): Tensor => full(t.shape, 1, { dtype: t.dtype, backend: t.backend, ...opts });
export const fullLike = (t: Tensor, v: number, opts: CreateOptions = {}): Tensor => full(t.shape, v, { dtype: t.dtype, backend: t.backend, ...opts });

export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  const n = Math.max(0, Math.ceil((end - start) / step));
  const data = allocTyped(opts.dtype ?? 'float32', n);
  for (let i = 0; i < n; i++) data[i] = start + i * step;
  return finish(new Tensor((opts.backend ?? getBackend()).upload(data), [n]), opts);
}

export function linspace(start: number, end: number, steps: number, opts: CreateOptions = {}): Tensor {
  const data = new Float32Array(steps);
  // computed in f64 from both ends, as torch does, so the endpoints are exact
  for (let i = 0; i < steps; i++) data[i] = steps === 1 ? start : i < steps / 2 ? start + ((end - start) / (steps - 1)) * i : end - ((end - start) / (steps - 1)) * (steps - 1 - i);
  return finish(new Tensor((opts.backend ?? getBackend()).upload(data), [steps]), opts);
}

export function eye(n: number, m = n, opts: CreateOptions = {}): Tensor {
  const data = allocTyped(opts.dtype ?? 'float32', n * m);
  for (let i = 0; i < Math.min(n, m); i++) data[i * m + i] = 1;
  return finish(new Tensor((opts.backend ?? getBackend()).upload(data), [n, m]), opts);
}

type Nested = number | Nested[];

function inferNested(v: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

/**
 * Creates a tensor from nested arrays or a typed array (with `shape`). Int32Array data makes an
 * int32 tensor; everything else float32 unless `dtype` says otherwise.
 */
export function tensor(data: Nested | AnyTypedArray | readonly number[], opts: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  const be = opts.backend ?? getBackend();
  if (ArrayBuffer.isView(data)) {
    const arr = data as AnyTypedArray;
    const shape = opts.shape ?? [arr.length];
    if (numel(shape) !== arr.length) throw new RangeError(`tensor: ${arr.length} values do not fit shape ${fmtShape(shape)}`);
    const typed = opts.dtype && opts.dtype !== dtypeOf(arr) ? convert(arr, opts.dtype) : arr;
    return finish(new Tensor(be.upload(typed), shape), opts);
  }
  const shape = opts.shape ?? inferNested(data as Nested);
  const flat = (Array.isArray(data) ? (data as Nested[]).flat(Infinity as 1) : [data]) as number[];
  if (flat.length !== numel(shape)) throw new RangeError(`tensor: ragged nested array (expected ${numel(shape)} values for ${fmtShape(shape)}, got ${flat.length})`);
  const typed = allocTyped(opts.dtype ?? 'float32', flat.length);
  for (let i = 0; i < flat.length; i++) typed[i] = flat[i]!;
  return finish(new Tensor(be.upload(typed), shape), opts);
}

function dtypeOf(a: AnyTypedArray): DType {
  return a instanceof Float32Array ? 'float32' : a instanceof Int32Array ? 'int32' : a instanceof Uint32Array ? 'uint32' : 'float16';
}
function convert(a: AnyTypedArray, d: DType): AnyTypedArray {
  const out = allocTyped(d, a.length);
  for (let i = 0; i < a.length; i++) out[i] = d === 'int32' ? Math.trunc(a[i]!) : a[i]!;
  return out;
}
