/** Shape and stride arithmetic shared by every op and backend. */
export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 1) continue; // stride of a size-1 dim never matters
    if (strides[i] !== acc) return false;
    acc *= shape[i]!;
  }
  return true;
}

/** Dims from `from` on are laid out contiguously (the leading ones may have any strides). */
export function isContiguousFrom(shape: Shape, strides: readonly number[], from: number): boolean {
  return isContiguous(shape.slice(from), strides.slice(from));
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function normalizeDim(dim: number, rank: number, what = 'dim'): number {
  const d = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(rank, 1)) {
    throw new RangeError(`${what} ${dim} is out of range for a tensor of rank ${rank}`);
  }
  return d;
}

export function normalizeDims(dims: number | readonly number[] | undefined, rank: number): number[] {
  if (dims === undefined) return Array.from({ length: rank }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : [...dims];
  const out = list.map((d) => normalizeDim(d, rank));
  if (new Set(out).size !== out.length) throw new RangeError(`repeated dim in [${list.join(', ')}]`);
  return out.sort((x, y) => x - y);
}

/** NumPy/PyTorch broadcasting of two shapes. */
export function broadcastShapes(...shapes: Shape[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i]!;
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new RangeError(`shapes [${shapes.map((x) => x.join(', ')).join('] and [')}] cannot be broadcast together`);
    }
  }
  return out;
}

/**
 * Whether `shape` broadcasts to exactly `target` (PyTorch's rule for in-place writes such as copy_):
 * each dim equal or 1, and any extra leading dims of `shape` of size 1.
 */
export function broadcastsTo(shape: Shape, target: Shape): boolean {
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    const t = i + off < 0 ? 1 : target[i + off]!;
    if (shape[i] !== t && shape[i] !== 1) return false;
  }
  return true;
}

/** Strides that read `shape`/`strides` as if broadcast to `target` (0 on broadcast dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const off = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    out[off + i] = shape[i] === 1 && target[off + i] !== 1 ? 0 : strides[i]!;
  }
  return out;
}

export function assertShape(shape: Shape, what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`${what} [${shape.join(', ')}] has an invalid size ${d}`);
  }
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}
