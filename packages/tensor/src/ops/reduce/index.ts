import { Tensor } from '../../tensor.js';
import { normalizeDims, numel } from '../../shape.js';
import { record } from '../../autograd/record.js';
import { noGrad } from '../../autograd/grad-mode.js';
import { ew, add, sub, mul, square, sqrt, exp, log } from '../elementwise/index.js';
import { tidy } from '../../scope.js';
import { contiguous, permute, reshape, expand } from '../views.js';

/**
 * Reduces `dims` of x with one kernel over a [outer, size, inner] view. Reduced dims that are not one
 * contiguous block are first permuted to the end (one copy).
 */
function reduceRaw(x: Tensor, op: ReduceAttrs['op'], dims: number[], keepdim: boolean, scale?: number): Tensor {
  const rank = x.rank;
  const outShapeKeep = x.shape.map((d, i) => (dims.includes(i) ? 1 : d));
  const outShape = keepdim ? outShapeKeep : x.shape.filter((_, i) => !dims.includes(i));
  const block = dims.length === 0 || dims[dims.length - 1]! - dims[0]! === dims.length - 1;
  const grouped = !block && op !== 'argmax' && op !== 'argmin' && x.isContiguous ? keptMiddle(dims, rank) : null;
  if (grouped) {
    // leading and trailing dims reduced, a middle run kept (a conv bias gradient): one grouped kernel
    const [a, b] = grouped;
    const storage = x.backend.run('reduce', [x], {
      op, groups: numel(x.shape.slice(0, a)), outer: numel(x.shape.slice(a, b)), size: numel(x.shape.slice(b)), inner: 1, scale,
    } satisfies ReduceAttrs);
    return new Tensor(storage, outShape);
  }
  if (!block && x.isContiguous && (op === 'sum' || op === 'max' || op === 'min')) {
    // reduce the last run of adjacent dims, then the rest (e.g. a conv bias gradient, [0, 2, 3] of
    // NCHW: HW, then N): two reduce dispatches where the permute would copy the whole tensor first
    let s = dims.length - 1;
    while (s > 0 && dims[s - 1] === dims[s]! - 1) s--;
    const part = reduceRaw(x, op, dims.slice(s), true);
    const kept = reduceRaw(part, op, dims.slice(0, s), true, scale);
    part.dispose();
    if (keepdim) return kept;
    const out = reshape(kept, outShape);
    kept.dispose();
    return out;
  }
  let src = x;
  let outer: number, size: number, inner: number;
  if (dims.length === 0) {
    outer = numel(x.shape); size = 1; inner = 1;
  } else if (block) {
    outer = numel(x.shape.slice(0, dims[0]));
    size = numel(x.shape.slice(dims[0], dims[dims.length - 1]! + 1));
    inner = numel(x.shape.slice(dims[dims.length - 1]! + 1));
  } else {
    const keepDims = Array.from({ length: rank }, (_, i) => i).filter((i) => !dims.includes(i));
    src = permute(x, [...keepDims, ...dims]);
    outer = numel(keepDims.map((i) => x.shape[i]!));
    size = numel(dims.map((i) => x.shape[i]!));
    inner = 1;
  }
  const c = src.isContiguous ? src : contiguous(src);
  const storage = c.backend.run('reduce', [c], { op, outer, size, inner, scale } satisfies ReduceAttrs);
  if (c !== x && c !== src) c.dispose();
  if (src !== x) src.dispose();
  return new Tensor(storage, outShape);
}

/** [a, b] when the sorted dims are exactly [0, a) and [b, rank) with 0 < a < b: the kept dims are the middle run. */
function keptMiddle(dims: number[], rank: number): [number, number] | null {
  let a = 0;
  while (a < dims.length && dims[a] === a) a++;
  if (a === 0 || a === dims.length) return null;
  const b = dims[a]!;
  for (let j = a; j < dims.length; j++) if (dims[j] !== b + (j - a)) return null;
  return dims[dims.length - 1] === rank - 1 ? [a, b] : null;
}

function dimsOf(x: Tensor, dim: number | number[] | undefined): number[] {
  return normalizeDims(dim, x.rank);
}

function keepShape(x: Tensor, dims: number[]): number[] {
  return x.shape.map((d, i) => (dims.includes(i) ? 1 : d));
}

export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = dimsOf(x, dim);
  const y = reduceRaw(x, 'sum', dims, keepdim);
  return record(y, 'sum', [x], (g) => [expand(reshape(g, keepShape(x, dims)), [...x.shape])]);
}

export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  const dims = dimsOf(x, dim);
  const count = numel(dims.map((d) => x.shape[d]!));
  // the 1/count scale is applied in the reduction's store: one dispatch
  const y = noGrad(() => reduceRaw(x, 'sum', dims, keepdim, 1 / count));
  return record(y, 'mean', [x], (g) => [expand(reshape(ew('mul_scalar', [g], [1 / count]), keepShape(x, dims)), [...x.shape])]);
}

function extreme(op: 'max' | 'min') {
  return (x: Tensor, dim?: number | number[], keepdim = false): Tensor => {
    const dims = dimsOf(x, dim);
    const y = reduceRaw(x, op, dims, keepdim);
    return record(
      y,
      op,
      [x],
      (g, [sx, sy]) => {
        // Ties share the gradient evenly (amax/amin semantics).
        const ks = keepShape(x, dims);
        const mask = ew('eq', [sx!, reshape(sy!, ks)]);
        const count = reduceRaw(mask, 'sum', dims, true);
        return [ew('div', [ew('mul', [mask, reshape(g, ks)]), count])];
      },
      [x, y],
    );
  };
}
export const max = extreme('max');
export const min = extreme('min');

function argExtreme(op: 'argmax' | 'argmin') {
  return (x: Tensor, dim?: number, keepdim = false): Tensor => {
    if (dim === undefined) {
      const flat = reshape(x, [x.size]);
      const r = reduceRaw(flat, op, [0], false);
      flat.dispose();
      return r;
    }
    return reduceRaw(x, op, dimsOf(x, dim), keepdim);
  };
}
/** Index of the first maximum (int32). Without dim, over the flattened tensor. */
export const argmax = argExtreme('argmax');
export const argmin = argExtreme('argmin');

/** Variance, two-pass (mean first, then squared deviations): stable, unlike E[x²]−E[x]². */
export function variance(x: Tensor, dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
  const dims = dimsOf(x, dim);
  const n = numel(dims.map((d) => x.shape[d]!));
  const correction = opts.unbiased ?? true ? 1 : 0;
  return tidy(() => mul(sum(square(sub(x, mean(x, dims, true))), dims, opts.keepdim ?? false), 1 / Math.max(n - correction, 0)));
}

export function std(x: Tensor, dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
  return tidy(() => sqrt(variance(x, dim, opts)));
}

/** log(sum(exp(x))) with the (detached) max subtracted first: stable for large inputs. */
export function logsumexp(x: Tensor, dim: number | number[], keepdim = false): Tensor {
  const dims = dimsOf(x, dim);
  return tidy(() => {
    const m = noGrad(() => {
      const raw = reduceRaw(x, 'max', dims, true);
      // An all -inf row would give inf - inf: shift by 0 there instead.
      return ew('where', [ew('lt', [ew('abs', [raw]), ew('fill', [raw], [Infinity])]), raw, ew('fill', [raw], [0])]);
    });
    const y = add(log(sum(exp(sub(x, m)), dims, true)), m);
    return keepdim ? y : reshape(y, x.shape.filter((_, i) => !dims.includes(i)));
  });
}

// The kernel contract of this op (its entry of Kernels in backends/kernel-attrs.ts).

/**
 * Reduces the middle axis of a contiguous [outer, size, inner] view. With `groups` > 1 the view is
 * [groups, outer, size, inner] and both groups and size are reduced (e.g. a conv bias gradient,
 * dims [0, 2, 3] of NCHW, in one kernel); argmax/argmin are not grouped.
 */
export interface ReduceAttrs {
  op: 'sum' | 'max' | 'min' | 'argmax' | 'argmin';
  outer: number;
  size: number;
  inner: number;
  groups?: number;
  /** 'sum' only: the result is multiplied by this in the reduction's store (a mean in one dispatch); default 1. */
  scale?: number;
}
