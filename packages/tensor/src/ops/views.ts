import { Tensor } from '../tensor.js';
import { contiguousStrides, fmtShape, normalizeDim, numel, shapesEqual } from '../shape.js';
import { record } from '../autograd/record.js';
import { ew, ewInto, sumToShape } from './elementwise/index.js';
import { strides3, type ConcatAttrs } from './concat/index.js';
import type { View } from '../backend.js';

/** Materialises a contiguous copy (a no-op handle when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) {
    const v = Tensor.view(x, x.shape, x.strides, x.offset);
    return record(v, 'contiguous', [x], (g) => [g]);
  }
  return clone(x);
}

export function clone(x: Tensor): Tensor {
  const y = ew('copy', [x], [], x.dtype);
  return record(y, 'clone', [x], (g) => [g]);
}

function inferShape(x: Tensor, shape: number[]): number[] {
  const n = x.size;
  const minus = shape.filter((d) => d === -1).length;
  if (minus > 1) throw new RangeError(`reshape: only one dimension can be -1, got ${fmtShape(shape)}`);
  const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const out = shape.map((d) => (d === -1 ? (known === 0 ? 0 : n / known) : d));
  if (numel(out) !== n || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`reshape: cannot view ${fmtShape(x.shape)} (${n} elements) as ${fmtShape(shape)}`);
  }
  return out;
}

export function reshape(x: Tensor, shapeIn: number[]): Tensor {
  const shape = inferShape(x, shapeIn);
  const src = x.isContiguous ? x : contiguous(x);
  const y = Tensor.view(src, shape, contiguousStrides(shape), src.offset);
  if (src !== x) src.dispose();
  return record(y, 'reshape', [x], (g) => [reshape(g, [...x.shape])]);
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.rank === 0) return reshape(x, [1]);
  const s = normalizeDim(startDim, x.rank), e = normalizeDim(endDim, x.rank);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dimsIn: number[]): Tensor {
  if (dimsIn.length !== x.rank) throw new RangeError(`permute: ${dimsIn.length} dims given for a tensor of rank ${x.rank}`);
  const dims = dimsIn.map((d) => normalizeDim(d, x.rank));
  if (new Set(dims).size !== dims.length) throw new RangeError(`permute: repeated dim in [${dimsIn.join(', ')}]`);
  const y = Tensor.view(x, dims.map((d) => x.shape[d]!), dims.map((d) => x.strides[d]!), x.offset);
  const inv = new Array<number>(dims.length);
  dims.forEach((d, i) => (inv[d] = i));
  return record(y, 'permute', [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  if (x.rank < 2 && d0 === -2 && d1 === -1) return contiguous(x);
  const a = normalizeDim(d0, x.rank), b = normalizeDim(d1, x.rank);
  const dims = Array.from({ length: x.rank }, (_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normalizeDim(dim, x.rank);
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (s < 0 || length < 0 || s + length > size) {
    throw new RangeError(`narrow: [${start}, ${start + length}) is outside dim ${dim} of size ${size}`);
  }
  const shape = [...x.shape];
  shape[d] = length;
  const y = Tensor.view(x, shape, x.strides, x.offset + s * x.strides[d]!);
  return record(y, 'narrow', [x], (g) => {
    const pads = new Array<number>(2 * x.rank).fill(0);
    // pad() takes pairs from the last dim backwards
    const k = x.rank - 1 - d;
    pads[2 * k] = s;
    pads[2 * k + 1] = size - s - length;
    return [pad(g, pads, 0)];
  });
}

export function slice(x: Tensor, ranges: ([number, number] | [number] | null)[]): Tensor {
  let y = x;
  ranges.forEach((r, d) => {
    if (!r) return;
    const size = x.shape[d]!;
    const norm = (v: number) => Math.min(Math.max(v < 0 ? v + size : v, 0), size);
    const s = norm(r[0]);
    const e = r.length > 1 ? norm(r[1]!) : size;
    const prev = y;
    y = narrow(y, d, s, Math.max(e - s, 0));
    if (prev !== x) prev.dispose();
  });
  return y === x ? contiguous(x) : y;
}

export function expand(x: Tensor, shapeIn: number[]): Tensor {
  if (shapeIn.length < x.rank) throw new RangeError(`expand: ${fmtShape(shapeIn)} has fewer dims than ${fmtShape(x.shape)}`);
  const lead = shapeIn.length - x.rank;
  const shape = shapeIn.map((d, i) => (d === -1 ? (i < lead ? 1 : x.shape[i - lead]!) : d));
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const sd = x.shape[i - lead]!;
    if (sd === d) return x.strides[i - lead]!;
    if (sd === 1) return 0;
    throw new RangeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shapeIn)}`);
  });
  if (shapesEqual(shape, x.shape)) {
    const v = Tensor.view(x, x.shape, x.strides, x.offset);
    return record(v, 'expand', [x], (g) => [g]);
  }
  const y = Tensor.view(x, shape, strides, x.offset);
  return record(y, 'expand', [x], (g) => [sumToShape(g, x.shape)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normalizeDim(dim, x.rank);
  if (x.shape[d] !== 1) return reshape(x, [...x.shape]);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = dim < 0 ? dim + x.rank + 1 : dim;
  if (d < 0 || d > x.rank) throw new RangeError(`unsqueeze: dim ${dim} out of range for rank ${x.rank}`);
  const shape = [...x.shape];
  shape.splice(d, 0, 1);
  return reshape(x, shape);
}

export function split(x: Tensor, sizes: number | number[], dim = 0): Tensor[] {
  const d = normalizeDim(dim, x.rank);
  const total = x.shape[d]!;
  const list = typeof sizes === 'number' ? Array.from({ length: Math.ceil(total / sizes) }, (_, i) => Math.min(sizes, total - i * sizes)) : sizes;
  if (list.reduce((a, b) => a + b, 0) !== total) throw new RangeError(`split: sizes [${list.join(', ')}] do not add up to ${total}`);
  let off = 0;
  return list.map((n) => {
    const t = narrow(x, d, off, n);
    off += n;
    return t;
  });
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const d = normalizeDim(dim, x.rank);
  return split(x, Math.ceil(x.shape[d]! / chunks), d);
}

/** Concatenates along `dim`: each input is copied into its slice of the output. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('cat: no tensors given');
  const first = tensors[0]!;
  const d = normalizeDim(dim, first.rank);
  for (const t of tensors) {
    if (t.rank !== first.rank || t.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new RangeError(`cat: shapes ${tensors.map((x) => fmtShape(x.shape)).join(', ')} differ outside dim ${dim}`);
    }
  }
  const shape = [...first.shape];
  shape[d] = tensors.reduce((a, t) => a + t.shape[d]!, 0);
  const sizes = tensors.map((t) => t.shape[d]!);
  const backend = first.backend;
  // one concat kernel for float32 inputs that read as [outer, size, inner] views (any contiguous or
  // sliced tensor); otherwise one elementwise copy per input
  const views3 = tensors.map((t) => (t.dtype === 'float32' && t.backend === backend ? strides3(t.shape, t.strides, d) : null));
  let out: Tensor;
  if (views3.every((v) => v !== null)) {
    const outer = numel(shape.slice(0, d)), inner = numel(shape.slice(d + 1));
    const views: View[] = tensors.map((t, k) => ({ storage: t.storage, shape: [outer, sizes[k]!, inner], strides: views3[k]!, offset: t.offset, dtype: t.dtype }));
    out = new Tensor(backend.run('concat', views, { outer, inner, sizes } satisfies ConcatAttrs), shape);
  } else {
    const storage = backend.alloc(first.dtype, numel(shape));
    out = new Tensor(storage, shape);
    const strides = contiguousStrides(shape);
    let off = 0;
    for (const t of tensors) {
      const s = [...shape];
      s[d] = t.shape[d]!;
      if (numel(s) > 0) ewInto({ storage, shape: s, strides, offset: off * strides[d]!, dtype: first.dtype }, 'copy', [t]);
      off += t.shape[d]!;
    }
  }
  return record(out, 'cat', tensors, (g) => split(g, sizes, d));
}

export function stack(tensors: Tensor[], dim = 0): Tensor {
  const ups = tensors.map((t) => unsqueeze(t, dim < 0 ? dim + t.rank + 1 : dim));
  const out = cat(ups, dim < 0 ? dim + tensors[0]!.rank + 1 : dim);
  for (const u of ups) u.dispose();
  return out;
}

/**
 * Constant padding, PyTorch order: pads = [lastLeft, lastRight, prevLeft, prevRight, …].
 * Negative pads crop.
 */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.rank) throw new RangeError(`pad: ${pads.length} values do not fit a tensor of rank ${x.rank}`);
  let src = x;
  const shape = [...x.shape];
  const lo = new Array<number>(x.rank).fill(0);
  for (let k = 0; k < pads.length / 2; k++) {
    const d = x.rank - 1 - k;
    const l = pads[2 * k]!, r = pads[2 * k + 1]!;
    // crop first for negative pads
    const cl = Math.max(-l, 0), cr = Math.max(-r, 0);
    if (cl || cr) {
      const prev = src;
      src = narrow(src, d, cl, src.shape[d]! - cl - cr);
      if (prev !== x) prev.dispose();
    }
    lo[d] = Math.max(l, 0);
    shape[d] = src.shape[d]! + Math.max(l, 0) + Math.max(r, 0);
  }
  const storage = x.backend.alloc(x.dtype, numel(shape));
  const strides = contiguousStrides(shape);
  const n = numel(shape);
  if (n > 0) ewInto({ storage, shape: [n], strides: [1], offset: 0, dtype: x.dtype }, 'fill', [], [value]);
  const offset = lo.reduce((a, l, i) => a + l * strides[i]!, 0);
  if (src.size > 0) ewInto({ storage, shape: [...src.shape], strides, offset, dtype: x.dtype }, 'copy', [src]);
  const out = new Tensor(storage, shape);
  const srcShape = [...src.shape];
  if (src !== x) {
    // gradient flows through the cropped view
    const s = src;
    return record(out, 'pad', [s], (g) => [narrowAll(g, lo, srcShape)]);
  }
  return record(out, 'pad', [x], (g) => [narrowAll(g, lo, srcShape)]);
}

function narrowAll(g: Tensor, lo: number[], shape: number[]): Tensor {
  let y = g;
  for (let d = 0; d < shape.length; d++) {
    if (lo[d] === 0 && shape[d] === g.shape[d]) continue;
    y = narrow(y, d, lo[d]!, shape[d]!);
  }
  return y === g ? contiguous(g) : y;
}
