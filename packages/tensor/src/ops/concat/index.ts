/**
 * The concat kernel: the inputs of `cat` (ops/views.ts) written into one contiguous output in one
 * dispatch, where one copy per input took one dispatch each. Each input is read as a 3-D view
 * [outer, size_k, inner] through its own strides; the output is [outer, Σ size_k, inner].
 */
export interface ConcatAttrs {
  /** Product of the dims before the concatenated one. */
  outer: number;
  /** Product of the dims after it. */
  inner: number;
  /** Each input's extent along the concatenated dim (the output's is their sum). */
  sizes: number[];
}

/**
 * A view's strides as [outer, dim, inner] when the dims before `d` step as one (each stride the next
 * one times its extent, size-1 dims ignored) and so do the dims after it; null otherwise (a permuted
 * view: `cat` then copies it with the elementwise kernel).
 */
export function strides3(shape: readonly number[], strides: readonly number[], d: number): [number, number, number] | null {
  const merge = (from: number, to: number): number | null => {
    let stride: number | null = null;
    let span = 1;
    for (let k = to - 1; k >= from; k--) {
      if (shape[k] === 1) continue;
      if (stride === null) stride = strides[k]!;
      else if (strides[k] !== stride * span) return null;
      span *= shape[k]!;
    }
    return stride ?? 0;
  };
  const so = merge(0, d), si = merge(d + 1, shape.length);
  if (so === null || si === null) return null;
  return [so, strides[d]!, si];
}
