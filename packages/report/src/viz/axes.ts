/** Axis scales for the charts: "nice" tick positions, tick label formatting, value-to-pixel maps. */

export interface Ticks {
  /** Domain the axis spans (extended outwards to whole ticks for linear axes). */
  domain: [number, number];
  values: number[];
  labels: string[];
}

/** The 1, 2, 5 x 10^k step nearest above `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/**
 * Linear ticks over [lo, hi] with about `target` intervals. Unless `fixed`, the domain grows to
 * the enclosing ticks so the data never touches the frame at an odd place.
 */
export function linearTicks(lo: number, hi: number, target = 6, fixed = false): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad; hi += pad;
  }
  const step = niceStep((hi - lo) / target);
  const domain: [number, number] = fixed ? [lo, hi] : [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
  const values: number[] = [];
  for (let v = Math.ceil(domain[0] / step - 1e-9) * step; v <= domain[1] + step * 1e-9; v += step) {
    values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return { domain, values, labels: values.map((v) => formatTick(v, decimals)) };
}

/**
 * Log10 ticks: powers of ten, plus 2x and 5x when the domain spans few decades. The domain is
 * widened to whole ticks unless `fixed`.
 */
export function logTicks(lo: number, hi: number, fixed = false): Ticks {
  if (!(lo > 0) || !Number.isFinite(lo)) lo = hi > 0 ? hi / 10 : 0.1;
  if (!(hi > 0) || !Number.isFinite(hi)) hi = lo * 10;
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) { lo /= 2; hi *= 2; }
  const e0 = Math.floor(Math.log10(lo) + 1e-9), e1 = Math.ceil(Math.log10(hi) - 1e-9);
  const decades = Math.max(1, e1 - e0);
  const mults = decades <= 2 ? [1, 2, 5] : decades <= 4 ? [1, 3] : [1];
  const candidates: number[] = [];
  for (let e = e0; e <= e1; e++) for (const m of mults) candidates.push(m * 10 ** e);
  let domain: [number, number];
  if (fixed) domain = [lo, hi];
  else {
    // Widen to the nearest candidate ticks around the data.
    const below = candidates.filter((c) => c <= lo * (1 + 1e-9));
    const above = candidates.filter((c) => c >= hi * (1 - 1e-9));
    domain = [below.length ? below[below.length - 1]! : lo, above.length ? above[0]! : hi];
  }
  const values = candidates.filter((c) => c >= domain[0] * (1 - 1e-9) && c <= domain[1] * (1 + 1e-9));
  return { domain, values, labels: values.map(formatLog) };
}

function formatLog(v: number): string {
  const e = Math.floor(Math.log10(v) + 1e-9);
  if (e >= -3 && e <= 4) return formatTick(v, Math.max(0, -e));
  const m = Math.round(v / 10 ** e);
  return m === 1 ? `1e${e}` : `${m}e${e}`;
}

/** Tick label: fixed decimals, large values shortened with k / M. */
export function formatTick(v: number, decimals: number): string {
  const a = Math.abs(v);
  if (a >= 1e6 && a % 1e5 === 0) return `${trimZeros((v / 1e6).toFixed(1))}M`;
  if (a >= 1e4 && a % 100 === 0) return `${trimZeros((v / 1e3).toFixed(1))}k`;
  if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(1);
  return v.toFixed(Math.min(decimals, 6));
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** A value formatted for display in a cell or above a bar: integers stay whole, others get 2-3 digits. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return Math.abs(v) >= 1e5 ? formatTick(v, 0) : String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01 || a === 0) return v.toFixed(2);
  return v.toExponential(1);
}

/** Maps a domain value to a pixel coordinate in [p0, p1] (p1 < p0 for upward y axes). */
export function scaler(domain: readonly [number, number], p0: number, p1: number, log = false): (v: number) => number {
  const f = log ? Math.log10 : (v: number) => v;
  const d0 = f(domain[0]), d1 = f(domain[1]);
  const span = d1 - d0 || 1;
  return (v: number) => p0 + ((f(v) - d0) / span) * (p1 - p0);
}
