import { Tensor } from '../tensor.js';
import type { Backend, Storage } from '../backend.js';
import { allocTyped, type AnyTypedArray, type DType } from '../dtype.js';
import { assertShape, numel, fmtShape, contiguousStrides } from '../shape.js';
import { getBackend } from '../context.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import type { RandomAttrs } from '../backends/kernel-attrs.js';

export interface CreateOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
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

export interface RandomOptions extends CreateOptions {
  generator?: Generator | undefined;
}

function random(shape: readonly number[], dist: RandomAttrs['dist'], p0: number, p1: number, opts: RandomOptions): Tensor {
  assertShape(shape);
  const gen = opts.generator ?? defaultGenerator;
  const n = numel(shape);
  const be = opts.backend ?? getBackend();
  const attrs: RandomAttrs = { dist, n, seedLo: gen.seedLo, seedHi: gen.seedHi, counter: gen.take(n), p0, p1 };
  const storage = be.run('random', [], attrs);
  return finish(new Tensor(storage, shape, contiguousStrides(shape)), opts);
}

/** Uniform in [low, high) from the seeded Philox stream (same numbers on every backend). */
export function rand(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number } = {}): Tensor {
  return random(shape, 'uniform', opts.low ?? 0, opts.high ?? 1, opts);
}
/** Normal(mean, std) by Box-Muller over the Philox stream. */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  return random(shape, 'normal', opts.mean ?? 0, opts.std ?? 1, opts);
}
/** Integers in [low, high) as int32. */
export function randint(low: number, high: number, shape: readonly number[], opts: RandomOptions = {}): Tensor {
  // an empty range has nothing to draw from (PyTorch raises too; the clamp below would return high - 1)
  if (!(low < high)) throw new RangeError(`randint: low (${low}) must be less than high (${high})`);
  const u = random(shape, 'uniform', 0, 1, { ...opts, requiresGrad: false });
  const be = u.backend;
  const range = high - low;
  const ew = (op: string, x: Storage, params: number[]): Storage => {
    const view = { storage: x, shape: [...shape], strides: contiguousStrides(shape), offset: 0, dtype: x.dtype };
    const s = be.run('elementwise', [view], { op, params, shape: [...shape], outDtype: 'int32' });
    if (!s) throw new Error(`${op}: the elementwise kernel returned no output`);
    return s;
  };
  // Offset only after truncating: truncation toward zero is floor only for the non-negative
  // u * range (a negative `low` folded in first would round toward zero). The clamp guards
  // f32 rounding of u * range up to `range`.
  const k = ew('axpb', u.storage, [range, 0]);
  u.dispose();
  const c = ew('clamp', k, [0, range - 1]);
  k.release();
  const out = ew('add_scalar', c, [low]);
  c.release();
  return new Tensor(out, shape);
}
