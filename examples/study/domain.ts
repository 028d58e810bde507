/**
 * How far synthetic images are from real ones in a feature space: the leave-one-out 1-nearest-neighbour
 * two-sample test (Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", 2017, the 1-NN form).
 * Pool equal numbers of real and synthetic feature rows; for each row find its nearest other row; the
 * accuracy is the share whose neighbour comes from the same set. 0.5: the sets look alike; 1.0: every
 * synthetic image is nearer another synthetic image than any real one, so a classifier can tell them
 * apart and may learn the difference instead of the class.
 */

export interface TwoSampleResult {
  /** Share of rows whose nearest other row is from the same set (0.5 = indistinguishable). */
  accuracy: number;
  /** Rows used from each set (the smaller set's size; the larger set's first rows). */
  perSet: number;
  /** Of the real rows, the share whose nearest neighbour is real; of the synthetic rows, synthetic. */
  realSelf: number;
  syntheticSelf: number;
}

/** Squared L2 distance between row i of `a` and row j of `b` (both `dim` wide). */
function dist2(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let k = 0; k < dim; k++) {
    const d = a[i * dim + k]! - b[j * dim + k]!;
    s += d * d;
  }
  return s;
}

/**
 * `real` and `synthetic` are row-major N × dim feature matrices. The larger set is cut to the smaller's
 * size (its first rows) so that chance is 0.5.
 */
export function oneNnTwoSample(real: Float32Array, synthetic: Float32Array, dim: number): TwoSampleResult {
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`oneNnTwoSample: dim must be a positive integer, got ${dim}`);
  if (real.length % dim || synthetic.length % dim) throw new RangeError(`oneNnTwoSample: feature lengths ${real.length} and ${synthetic.length} are not multiples of dim ${dim}`);
  const n = Math.min(real.length / dim, synthetic.length / dim);
  if (n < 2) throw new RangeError(`oneNnTwoSample: need at least 2 rows in each set, got ${real.length / dim} real and ${synthetic.length / dim} synthetic`);
  const sets = [real, synthetic];
  const self = [0, 0];
  for (let s = 0; s < 2; s++) {
    for (let i = 0; i < n; i++) {
      let best = Infinity, bestSet = -1;
      for (let t = 0; t < 2; t++) {
        for (let j = 0; j < n; j++) {
          if (t === s && j === i) continue;
          const d = dist2(sets[s]!, i, sets[t]!, j, dim);
          if (d < best) { best = d; bestSet = t; }
        }
      }
      if (bestSet === s) self[s]!++;
    }
  }
  return { accuracy: (self[0]! + self[1]!) / (2 * n), perSet: n, realSelf: self[0]! / n, syntheticSelf: self[1]! / n };
}
