/** Error metrics for golden comparisons. */
export interface Diff {
  maxAbs: number;
  /** maxAbs relative to the reference's scale (max |ref|). */
  maxRel: number;
  ok: boolean;
  worst: number;
}

export interface Tolerance {
  /** Relative to the reference's scale. */
  rtol: number;
  atol: number;
}

/** f32 ops: 1e-4 of the reference's scale (GUIDE: "about 1e-4 relative to the reference's scale for ops"). */
export const OPS_TOL: Tolerance = { rtol: 1e-4, atol: 1e-6 };

export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = OPS_TOL): Diff {
  if (actual.length !== expected.length) return { maxAbs: Infinity, maxRel: Infinity, ok: false, worst: -1 };
  let maxAbs = 0, scale = 0, worst = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!, a = actual[i]!;
    scale = Math.max(scale, Math.abs(e));
    const d = Number.isNaN(a) !== Number.isNaN(e) ? Infinity : Number.isNaN(e) ? 0 : Math.abs(a - e);
    if (d > maxAbs || (worst < 0 && d >= maxAbs)) {
      maxAbs = d;
      worst = i;
    }
  }
  const maxRel = scale > 0 ? maxAbs / scale : maxAbs;
  return { maxAbs, maxRel, ok: maxAbs <= tol.atol + tol.rtol * scale, worst };
}
