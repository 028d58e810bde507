// Statistics over repeated runs (one value per seed): means with Student-t 95% intervals, paired
// differences between two arms run on the same seeds, and the per-arm metrics the study reports.
import { classificationMetrics } from './classification.js';

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: ~1e-15 relative). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x); // reflection
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction of the incomplete beta (modified Lentz, as in Numerical Recipes' betacf). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 100_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) return h;
  }
  throw new Error(`incomplete beta: continued fraction did not converge (x=${x}, a=${a}, b=${b})`);
}

/** Regularized incomplete beta I_x(a, b). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  // the fraction converges fast only on this side of the mode; use the symmetry on the other
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(x, a, b)) / a : 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/** Upper tail P(T > t) of Student's t with `df` degrees of freedom, for t ≥ 0. */
function tUpperTail(t: number, df: number): number {
  return 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

const Z975 = 1.959963984540054;

/**
 * The 0.975 quantile of Student's t with `df` degrees of freedom (the half-width factor of a
 * two-sided 95% interval): 12.706 at df = 1, 4.303 at 2, 2.776 at 4, 1.960 as df → ∞. Computed by
 * inverting the t distribution function (regularized incomplete beta), so any real df > 0 works.
 */
export function tQuantile975(df: number): number {
  if (!(df > 0) || Number.isNaN(df)) throw new Error(`tQuantile975: degrees of freedom must be > 0, got ${df}`);
  if (df === Infinity) return Z975;
  if (df === 1) return Math.tan(0.475 * Math.PI); // Cauchy: closed form
  // bisection on the upper tail (monotone in t); 0.025 lies between t = z and t = 12.71 for df ≥ 1
  let lo = Z975, hi = 13;
  while (tUpperTail(hi, df) > 0.025) hi *= 2; // df < 1
  for (let i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (tUpperTail(mid, df) > 0.025) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** A figure over seeds: mean, 95% t-interval, and the values it came from (snake_case: it goes into report files). */
export interface SeedSummary {
  /** Mean of the defined values; null when none is defined. */
  mean: number | null;
  /** mean ± t(0.975, n-1) · sd / √n over the n defined values; null when n < 2. */
  ci95: [number, number] | null;
  /** The input values, one per seed (null where the metric was undefined, e.g. an AUC without positives). */
  per_seed: (number | null)[];
}

/** Mean and 95% Student-t confidence interval of per-seed values; nulls are left out. */
export function summarize(values: readonly (number | null)[]): SeedSummary {
  const defined: number[] = [];
  values.forEach((v, i) => {
    if (v === null) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`summarize: value ${i} is ${v}, expected a finite number or null`);
    defined.push(v);
  });
  const n = defined.length;
  const per_seed = [...values];
  if (n === 0) return { mean: null, ci95: null, per_seed };
  const mean = defined.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, ci95: null, per_seed };
  const variance = defined.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  const half = (tQuantile975(n - 1) * Math.sqrt(variance)) / Math.sqrt(n);
  return { mean, ci95: [mean - half, mean + half], per_seed };
}

/**
 * Paired comparison of two arms run on the same seeds: `summarize` of the per-seed differences
 * a[i] − b[i] (null where either is null). Pairing removes the seed-to-seed variance both share
 * (same split, same initialization), so its interval is what says whether an arm helps.
 */
export function pairedDifference(a: readonly (number | null)[], b: readonly (number | null)[]): SeedSummary {
  if (a.length !== b.length) throw new Error(`pairedDifference: ${a.length} values vs ${b.length}: both arms need one value per seed, in the same seed order`);
  return summarize(a.map((x, i) => (x === null || b[i] === null ? null : x - b[i]!)));
}

/** Key of the whole-test-set metrics in `armMetrics` (so no class may be called this). */
export const OVERALL_KEY = 'overall';

/**
 * One run's test metrics as the study reports them: per class `recall`, `precision`, `f1`, `auc`,
 * and under `overall` the `balanced_accuracy` (mean recall over classes present in the test set)
 * and `mean_auc` (mean of the defined per-class one-vs-rest AUCs, the Kaggle metric). Recall and F1
 * are null for a class with no test images, AUC when it has no positives or no negatives; precision
 * of a never-predicted class is 0 (sklearn's zero_division=0), as in the classification report.
 */
export function armMetrics(labels: ArrayLike<number>, probs: ArrayLike<number>, classNames: readonly string[]): Record<string, Record<string, number | null>> {
  if (classNames.includes(OVERALL_KEY)) throw new Error(`armMetrics: a class may not be named "${OVERALL_KEY}" (it holds the overall metrics)`);
  const m = classificationMetrics(labels, probs, classNames.length);
  const out: Record<string, Record<string, number | null>> = {};
  const recalls: number[] = [];
  m.perClass.forEach((c, i) => {
    const present = c.support > 0;
    if (present) recalls.push(c.recall);
    out[classNames[i]!] = { recall: present ? c.recall : null, precision: c.precision, f1: present ? c.f1 : null, auc: c.auc };
  });
  out[OVERALL_KEY] = {
    balanced_accuracy: recalls.length ? recalls.reduce((s, v) => s + v, 0) / recalls.length : null,
    mean_auc: m.meanAuc,
  };
  return out;
}
