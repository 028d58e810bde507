import { Tensor } from '../../tensor.js';
import type { Storage } from '../../backend.js';
import { assertShape, numel, contiguousStrides } from '../../shape.js';
import { getBackend } from '../../context.js';
import { defaultGenerator } from '../../random/generator.js';
import { finish, type CreateOptions } from '../creation.js';
import type { Generator } from '../../random/generator.js';

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

// The kernel contract of this op (its entry of Kernels in backends/kernel-attrs.ts).

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
